"""Engine speed: issue 21's two cases (65,280-flow all-to-all, 8,192-GPU ring), then the older ones.

    python benchmarks/netsim_speed.py [--random-flows N] [--no-full] [--only-issue21]

Issue 21's acceptance cases come first, incremental engine only (the full-recompute reference
would take minutes): a 256-GPU (32 x 8) all-to-all with one connection per peer, 1 GiB per rank
(256 x 255 = 65,280 flows, the nearest full all-to-all to 65,536; single_path, so ECMP collisions
tie every flow into one component), and a 1 GiB ring all-reduce over 8,192 GPUs (1,024 x 8).

Each case runs twice in the same process: with the incremental engine (only the connected
component of links touched by an event is re-rated) and with ``incremental=False`` (every
active flow re-rated per event, the previous engine); it prints flows/s and events/s per CPU
second and the CPU-time speed-up. CPU time is the figure to quote on a shared machine.

The 8,192-flow all-to-all is a bisection all-to-all: 128 GPUs (16 hosts x 8), every GPU of
hosts 0-7 exchanges 1 MiB with every GPU of hosts 8-15, one connection per direction
(64 x 64 x 2 = 8,192 flows, all crossing the spine). ``n(n-1)c = 8,192`` has no integer
solution, so a full all-to-all cannot give exactly 8,192 flows; the 64-GPU, 2-connection
all-to-all (8,064 flows) is printed too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork

Case = Callable[[bool], FlowNetwork]


def ring_all_reduce(transport: str) -> Case:
    def run(incremental: bool) -> FlowNetwork:
        net = FlowNetwork.build(128, 8, NetworkConfig(), transport, incremental=incremental)
        net.submit_collective("all_reduce", list(range(1024)), 1 << 30, 0)
        net.run()
        return net
    return run


def all_to_all_64(transport: str) -> Case:
    def run(incremental: bool) -> FlowNetwork:
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 2
        net = FlowNetwork.build(8, 8, cfg, transport, incremental=incremental)
        net.submit_collective("all_to_all", list(range(64)), 1 << 30, 0)
        net.run()
        return net
    return run


def all_to_all_256(transport: str) -> Case:
    """Issue 21: 256 GPUs (32 x 8), one connection per peer: 65,280 flows."""
    def run(incremental: bool) -> FlowNetwork:
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 1
        net = FlowNetwork.build(32, 8, cfg, transport, incremental=incremental)
        net.submit_collective("all_to_all", list(range(256)), 1 << 30, 0)
        net.run()
        return net
    return run


def ring_all_reduce_8192(transport: str) -> Case:
    """Issue 21: a 1 GiB ring all-reduce over 8,192 GPUs (1,024 hosts x 8)."""
    def run(incremental: bool) -> FlowNetwork:
        net = FlowNetwork.build(1024, 8, NetworkConfig(), transport, incremental=incremental)
        net.submit_collective("all_reduce", list(range(8192)), 1 << 30, 0)
        net.run()
        return net
    return run


def bisection_all_to_all(transport: str) -> Case:
    def run(incremental: bool) -> FlowNetwork:
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 1
        net = FlowNetwork.build(16, 8, cfg, transport, incremental=incremental)
        left, right = range(64), range(64, 128)
        for a in left:
            for b in right:
                net.submit_collective("send_recv", [a, b], 1 << 20, 0)
                net.submit_collective("send_recv", [b, a], 1 << 20, 0)
        net.run()
        return net
    return run


def random_p2p(n_flows: int, hosts: int = 128, gpus: int = 8, seed: int = 0) -> Case:
    """Independent send/recv flows with random sizes and start times: nearly every completion
    is its own event, the engine's worst case."""
    def run(incremental: bool) -> FlowNetwork:
        rng = np.random.default_rng(seed)
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 1
        net = FlowNetwork.build(hosts, gpus, cfg, "single_path", incremental=incremental)
        n = hosts * gpus
        for _ in range(n_flows):
            s, d = rng.choice(n, 2, replace=False)
            net.submit_collective("send_recv", [int(s), int(d)], int(2 ** rng.uniform(20, 26)),
                                  int(rng.integers(0, 1_000_000)))
        net.run()
        return net
    return run


def measure(name: str, transport: str, case: Case, full: bool) -> None:
    times = {}
    for incremental in (True, False) if full else (True,):
        t0, c0 = time.perf_counter(), time.process_time()
        net = case(incremental)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = net.stats
        times[incremental] = cpu
        label = "incremental" if incremental else "full"
        print(f"{name:<44} {transport:<15} {label:<11} flows={s.flows:<6} events={s.events:<6} "
              f"recomputes={s.rate_recomputes:<5} rerated={s.flows_recomputed:<8} wall={wall:7.3f}s "
              f"cpu={cpu:7.3f}s flows/s(cpu)={s.flows / cpu:9.0f} events/s(cpu)={s.events / cpu:9.0f} "
              f"sim_end={net.now_ns / 1e3:.0f}us", flush=True)
    if full:
        print(f"{'':<44} {'':<15} speed-up (full cpu / incremental cpu) = {times[False] / times[True]:.2f}x",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random-flows", type=int, default=1024)
    ap.add_argument("--no-full", action="store_true", help="skip the full-recompute reference runs")
    ap.add_argument("--only-issue21", action="store_true", help="run issue 21's two cases only")
    args = ap.parse_args()
    full = not args.no_full
    measure("all-to-all 256 GPUs (32x8), 1 conn/peer, 1 GiB", "single_path", all_to_all_256("single_path"), False)
    measure("ring all-reduce 8192 GPUs (1024x8), 1 GiB", "single_path", ring_all_reduce_8192("single_path"), False)
    if args.only_issue21:
        return
    for t in ("single_path", "uccl_multipath"):
        measure("ring all-reduce 1024 GPUs (128x8), 1 GiB", t, ring_all_reduce(t), full)
    for t in ("single_path", "uccl_multipath"):
        measure("bisection all-to-all 128 GPUs, 8192 flows", t, bisection_all_to_all(t), full)
    measure("all-to-all 64 GPUs (8x8), 2 conn/peer", "single_path", all_to_all_64("single_path"), full)
    measure(f"random send/recv 1024 GPUs, {args.random_flows} flows", "single_path",
            random_p2p(args.random_flows), full)


if __name__ == "__main__":
    main()
