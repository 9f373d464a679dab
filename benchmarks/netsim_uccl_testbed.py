"""UCCL's testbeds on netsim's flow engine: multipath / single-path gain per size over ECMP seeds 0-9.

    python benchmarks/netsim_uccl_testbed.py [--op all_reduce] [--scenario scenarios/uccl-testbed-6x8-h100.yaml]
        [--hosts N]   # N=3: within one rack

Prints, per size, the gain (single_path time / uccl_multipath time) as median [min, max] over seeds
0-9, and ethereal's (assigned single paths) beside it, twice: with the flow engine's instant max-min
shares (``congestion: none``, the default) and with RoCE's DCQCN on the single-path transports
(``congestion: dcqcn``, netsim/congestion.py: ConnectX default parameters; uccl_multipath keeps
max-min: its sprayed load leaves no switch queue standing). No knob is tuned to the published gains.

    --congestion none|dcqcn|dcqcn+clamp|all   (default all; dcqcn+clamp: the target rate reset to the
                                               cut rate on each CNP, as the paper's fluid model has it)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netsim.backend import build_network
from netsim.collectives import bus_factor
from netsim.config import load_cluster

CONGESTION_OPTIONS = {
    "none": {},
    "dcqcn": {"congestion": "dcqcn"},
    "dcqcn+clamp": {"congestion": "dcqcn", "congestion_options": {"clamp_target": True}},
}


def run(cluster, op: str, size: int, transport: str, ranks: list[int], congestion: str = "none"
        ) -> tuple[float, str]:
    c = cluster.model_copy(deep=True)
    c.network.transport.name = transport
    c.network.transport.options = CONGESTION_OPTIONS[congestion]
    net = build_network(c)
    h = net.submit_collective(op, ranks, size, 0)
    net.run()
    return max(net.result(h).values()) / 1e3, getattr(net, "choice_of", lambda h: "")(h)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="scenarios/uccl-testbed-6x8-h100.yaml")
    ap.add_argument("--op", default="all_reduce")
    ap.add_argument("--hosts", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--congestion", choices=[*CONGESTION_OPTIONS, "all"], default="all")
    args = ap.parse_args()
    base = load_cluster(args.scenario)
    hosts = args.hosts or base.hosts
    ranks = list(range(hosts * base.gpus_per_host))
    print(f"{args.scenario}: {args.op} over {len(ranks)} GPUs ({hosts} hosts), seeds 0-{args.seeds - 1}")
    for cc in (tuple(CONGESTION_OPTIONS) if args.congestion == "all" else (args.congestion,)):
        table(base, args, ranks, cc)


def table(base, args, ranks: list[int], cc: str) -> None:
    print(f"\ncongestion on single_path and ethereal: {cc}")
    print("| size | NCCL choice | single busbw GB/s (median) | multipath busbw | gain median [min, max] | "
          "ethereal gain median [min, max] |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in [1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30]:
        gains, eth, single = [], [], []
        for seed in range(args.seeds):
            c = base.model_copy(deep=True)
            c.network.seed = seed
            t_s, choice = run(c, args.op, size, "single_path", ranks, cc)
            t_m, _ = run(c, args.op, size, "uccl_multipath", ranks)
            t_e, _ = run(c, args.op, size, "ethereal", ranks, cc)
            gains.append(t_s / t_m)
            eth.append(t_s / t_e)
            single.append(t_s)
        f = bus_factor(args.op, len(ranks))
        bus_s, bus_m = size / (statistics.median(single) * 1e3) * f, size / (t_m * 1e3) * f
        print(f"| {size >> 20} MiB | {choice} | {bus_s:.1f} | {bus_m:.1f} | "
              f"{statistics.median(gains):.2f}x [{min(gains):.2f}, {max(gains):.2f}] | "
              f"{statistics.median(eth):.2f}x [{min(eth):.2f}, {max(eth):.2f}] |", flush=True)


if __name__ == "__main__":
    main()
