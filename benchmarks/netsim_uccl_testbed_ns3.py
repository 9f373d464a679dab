"""UCCL's all-reduce testbed on the ns-3 backend (reduced: rates and sizes / --scale, default 16):
multipath / single-path gain per size over ECMP seeds, packet level (DCTCP), flow set in
netsim/ns3/testbed.py (48 NICs as ns-3 hosts, NCCL's hierarchical ring's network hops).

    python benchmarks/netsim_uccl_testbed_ns3.py [--sizes 64,256,1024] [--seeds 10] [--scale 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netsim.collectives import bus_factor
from netsim.ns3.runner import simulate
from netsim.ns3.spec import TransportSpec
from netsim.ns3.testbed import uccl_testbed_all_reduce, uccl_testbed_fabric


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,256,1024", help="MiB, unscaled")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--scale", type=float, default=16.0)
    ap.add_argument("--spray-chunk", type=int, default=0,
                    help="multipath chunk bytes (default: UCCL's 32 KiB / scale, so a message has as many chunks "
                         "as unscaled)")
    args = ap.parse_args()
    chunk = args.spray_chunk or max(512, int(32768 / args.scale))
    spray = TransportSpec(chunk_bytes=chunk, claim_below_bytes=2 * chunk)
    fabric = uccl_testbed_fabric(args.scale)
    f = bus_factor("all_reduce", 48)
    print(f"UCCL testbed on ns-3, rates and sizes / {args.scale:g}, seeds 0-{args.seeds - 1}, "
          f"multipath chunk {chunk} B")
    print("| size | single busbw GB/s (median) | multipath busbw | gain median [min, max] | drops | wall s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mib in (int(x) for x in args.sizes.split(",")):
        size = int((mib << 20) / args.scale)
        t0 = time.time()
        multi = simulate(fabric, spray, uccl_testbed_all_reduce(size, multipath=True, seed=0, scale=args.scale))
        singles, drops = [], multi.drops
        for seed in range(args.seeds):
            r = simulate(fabric, TransportSpec(), uccl_testbed_all_reduce(size, multipath=False, seed=seed,
                                                                    scale=args.scale))
            singles.append(r.finish_ns)
            drops += r.drops
        gains = [s / multi.finish_ns for s in singles]
        def bus(t: float, size: int = size) -> float:  # bytes/ns = GB/s, in unscaled units
            return size * f / t * args.scale

        print(f"| {mib} MiB | {bus(statistics.median(singles)):.1f} | {bus(multi.finish_ns):.1f} | "
              f"{statistics.median(gains):.2f}x [{min(gains):.2f}, {max(gains):.2f}] | {drops} | "
              f"{time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
