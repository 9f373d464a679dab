"""Simulated vs measured intra-host busbw (2x H200, NCCL via torch.distributed).

    python benchmarks/netsim_nvlink_validation.py [--csv docs/data/netsim/nccl_h200x2.csv] [--fit]

Reads the measurement made by benchmarks/real/nccl_bench.py, simulates each (op, size) on
a 1-host x N-GPU netsim network with the default NetworkConfig and prints a markdown table.
``--fit`` grid-searches launch latency and per-op NVLink efficiency on sizes >= 16 MiB.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netsim.collectives import bus_factor
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork


def sim_time_us(op: str, size: int, n: int, cfg: NetworkConfig) -> float:
    net = FlowNetwork.build(1, n, cfg)
    h = net.submit_collective(op, list(range(n)), size, 0)
    net.run()
    return max(net.result(h).values()) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default="docs/data/netsim/nccl_h200x2.csv")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--min-bytes", type=int, default=16 << 20)
    args = ap.parse_args()
    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    cfg = NetworkConfig()
    if args.fit:
        big = [r for r in rows if int(r["size_bytes"]) >= args.min_bytes]
        best = None
        for launch in range(0, 41, 2):
            effs = {}
            worst = 0.0
            for op in sorted({r["op"] for r in big}):
                pts = [r for r in big if r["op"] == op]
                cand = []
                for e100 in range(40, 101):
                    c = cfg.model_copy(deep=True)
                    c.collectives.launch_latency_us = float(launch)
                    c.collectives.nvlink_efficiency[op] = e100 / 100
                    err = max(abs(float(r["time_us"]) / sim_time_us(op, int(r["size_bytes"]), int(r["world"]), c) - 1)
                              for r in pts)
                    cand.append((err, e100 / 100))
                err, e = min(cand)
                effs[op] = e
                worst = max(worst, err)
            if best is None or worst < best[0]:
                best = (worst, launch, effs)
        print(f"fit: worst busbw error {best[0]:.1%} launch_latency_us={best[1]} nvlink_efficiency={best[2]}")
        cfg.collectives.launch_latency_us = float(best[1])
        cfg.collectives.nvlink_efficiency.update(best[2])
    print("| op | size | measured busbw GB/s | simulated busbw GB/s | error |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        op, size, n = r["op"], int(r["size_bytes"]), int(r["world"])
        t = sim_time_us(op, size, n, cfg)
        sim_bus = size / (t * 1e-6) / 1e9 * bus_factor(op, n)
        meas = float(r["busbw_gbps"])
        mark = "" if size >= args.min_bytes else " (below 16 MiB, not a target)"
        print(f"| {op} | {size} | {meas:.1f} | {sim_bus:.1f} | {sim_bus / meas - 1:+.1%}{mark} |")


if __name__ == "__main__":
    main()
