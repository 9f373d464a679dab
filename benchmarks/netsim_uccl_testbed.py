"""UCCL's testbeds on netsim's flow engine: multipath / single-path gain per size over ECMP seeds 0-9.

    python benchmarks/netsim_uccl_testbed.py [--op all_reduce] [--scenario scenarios/uccl-testbed-6x8-h100.yaml]
        [--hosts N]   # N=3: within one rack

Prints, per size, the gain (single_path time / uccl_multipath time) as median [min, max] over seeds
0-9, and ethereal's (assigned single paths) beside it, twice: with the flow engine's instant max-min
shares (``congestion: none``, the default) and with RoCE's DCQCN on the single-path transports
(``congestion: dcqcn``, netsim/congestion.py: ConnectX default parameters; uccl_multipath keeps
max-min: its sprayed load leaves no switch queue standing). No knob is tuned to the published gains.

    --congestion none|dcqcn|dcqcn+clamp|dcqcn-paper|dcqcn-idle|all   (default all: the first three; dcqcn+clamp:
        the target rate reset to the cut rate on each CNP, as the paper's fluid model has it;
        dcqcn-paper: the parameter set Zhu et al. recommend, SIGCOMM 2015 section 6; dcqcn-idle:
        ConnectX defaults with alpha decayed to 0 before the call)
    --explain   also print why: the published figures as times (the NCCL penalty is a one-off
                ~3.4 ms, not a bandwidth share) and, per seed, the ECMP collisions on the spine tier
                against what one NCCL connection can push (netsim.collisions)
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
    # Zhu et al. (SIGCOMM 2015) section 6: B = 10 MB, T = 55 us, F = 5, R_AI = 40 Mb/s, g = 1/256,
    # K_min / K_max = 5 KB / 200 KB and P_max = 1% at 40 Gb/s (per Gb/s: 125 B / 5,000 B); none fitted here
    "dcqcn-paper": {"congestion": "dcqcn", "congestion_options": {
        "byte_counter_bytes": 10e6, "timer_ns": 55e3, "fast_recovery": 5, "ai_gbps": 40e6 / 8e9, "g": 1 / 256,
        "alpha0": 1.0, "kmin_bytes_per_gbit": 125.0, "kmax_bytes_per_gbit": 5000.0, "pmax": 0.01,
        "clamp_target": True}},
}
CONGESTION_OPTIONS["dcqcn-idle"] = {"congestion": "dcqcn", "congestion_options": {"alpha0": 0.0}}
"""ConnectX defaults, alpha decayed to 0 before the call (QPs idle long enough without a CNP)."""
DEFAULT_SET = ("none", "dcqcn", "dcqcn+clamp")

# UCCL's published all-reduce busbw (GB/s) on the testbed (FACTS.md), NCCL / UCCL per size
PUBLISHED = {256 << 20: (93.0, 234.0), 1 << 30: (185.0, 279.0)}


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
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--collision-seeds", type=int, default=200,
                    help="--explain: seeds for the worst-link histogram")
    args = ap.parse_args()
    base = load_cluster(args.scenario)
    hosts = args.hosts or base.hosts
    ranks = list(range(hosts * base.gpus_per_host))
    print(f"{args.scenario}: {args.op} over {len(ranks)} GPUs ({hosts} hosts), seeds 0-{args.seeds - 1}")
    if args.explain:
        explain(base, args, ranks)
    for cc in (DEFAULT_SET if args.congestion == "all" else (args.congestion,)):
        table(base, args, ranks, cc)


def explain(base, args, ranks: list[int]) -> None:
    """The published figures as times, and the ECMP collisions the model sees per seed."""
    from netsim.collisions import fabric_collisions
    from netsim.topologies import build_topology
    from netsim.transports import build_transport

    f = bus_factor("all_reduce", 48)
    print("\npublished (UCCL testbed, 48 GPUs), as times: t = size x 2(n-1)/n / busbw")
    t = {s: (s * f / (n * 1e3), s * f / (u * 1e3)) for s, (n, u) in PUBLISHED.items()}
    for s, (tn, tu) in t.items():
        print(f"  {s >> 20} MiB: NCCL {tn:.0f} us, UCCL {tu:.0f} us, NCCL - UCCL = {tn - tu:.0f} us")
    (s1, (n1, u1)), (s2, (n2, u2)) = sorted(t.items())
    inc = lambda a, b: (s2 - s1) * f / ((b - a) * 1e3)  # noqa: E731
    print(f"  from 256 MiB to 1 GiB (incremental busbw): NCCL {inc(n1, n2):.0f} GB/s, UCCL {inc(u1, u2):.0f} GB/s")
    print(f"\nECMP on the spine tier, {args.op} of {len(ranks)} GPUs, 256 MiB: flows per link (histogram), "
          "one connection's demand (its rate cap), worst link load / capacity in a fluid model")
    worst: dict[int, int] = {}
    for seed in range(max(args.seeds, args.collision_seeds)):  # each seed's collisions computed once
        c = base.network.model_copy(deep=True)
        c.seed = seed
        topo = build_topology(len(ranks) // base.gpus_per_host, base.gpus_per_host, c)
        r = fabric_collisions(args.op, ranks, 256 << 20, topology=topo,
                              transport=build_transport("single_path", seed=seed, options={}), config=c)
        if seed < args.seeds:
            print(f"  seed {seed}: {r.links_used} links, flows/link {r.per_link}, demand {r.demand_gbps:.1f} GB/s, "
                  f"worst load {r.worst_overload:.2f}, links over 1: {r.overloaded_links}")
        if seed < args.collision_seeds:
            k = max(r.per_link, default=0)
            worst[k] = worst.get(k, 0) + 1
    print(f"  seeds 0-{args.collision_seeds - 1}: flows on the worst link -> seeds {dict(sorted(worst.items()))}")


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
