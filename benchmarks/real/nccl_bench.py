"""Measure NCCL collectives on real GPUs, nccl-tests style, for netsim's validation table.

Launch on a GPU host (any world size):
    torchrun --standalone --nproc-per-node 2 benchmarks/real/nccl_bench.py --out results.csv

For every op and size (bytes, nccl-tests' "size": the whole buffer of all_reduce, the
gathered output of all_gather, the input of reduce_scatter, each rank's buffer of
all_to_all) it warms up, then times ``iters`` back-to-back calls with CUDA events and
reports the mean time, algbw = size / time and busbw = algbw x the nccl-tests factor.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import torch
import torch.distributed as dist

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")


def bus_factor(op: str, n: int) -> float:
    return 2.0 * (n - 1) / n if op == "all_reduce" else (n - 1) / n


def parse_size(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * mult[text[-1].upper()] if text[-1].upper() in mult else int(text)


def make_call(op: str, nbytes: int, n: int, dtype: torch.dtype, dev: torch.device):
    elem = torch.tensor([], dtype=dtype).element_size()
    count = max(n, nbytes // elem // n * n)  # divisible by world size
    if op == "all_reduce":
        buf = torch.ones(count, dtype=dtype, device=dev)
        return lambda: dist.all_reduce(buf)
    if op == "all_gather":
        out = torch.empty(count, dtype=dtype, device=dev)
        inp = torch.ones(count // n, dtype=dtype, device=dev)
        return lambda: dist.all_gather_into_tensor(out, inp)
    if op == "reduce_scatter":
        inp = torch.ones(count, dtype=dtype, device=dev)
        out = torch.empty(count // n, dtype=dtype, device=dev)
        return lambda: dist.reduce_scatter_tensor(out, inp)
    if op == "all_to_all":
        inp = torch.ones(count, dtype=dtype, device=dev)
        out = torch.empty(count, dtype=dtype, device=dev)
        return lambda: dist.all_to_all_single(out, inp)
    raise ValueError(op)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-bytes", default="1K")
    ap.add_argument("--max-bytes", default="1G")
    ap.add_argument("--factor", type=int, default=4, help="size step multiplier")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", default="nccl_bench.csv")
    ap.add_argument("--budget-s", type=float, default=240.0, help="stop adding sizes past this")
    args = ap.parse_args()

    dist.init_process_group("nccl")
    rank, n = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(dev)
    dtype = getattr(torch, args.dtype)
    if rank == 0:
        print(f"torch {torch.__version__} nccl {torch.cuda.nccl.version()} world {n} "
              f"gpu {torch.cuda.get_device_name(dev)}", flush=True)
    sizes, s = [], parse_size(args.min_bytes)
    while s <= parse_size(args.max_bytes):
        sizes.append(s)
        s *= args.factor
    rows = []
    t0 = time.time()
    for op in args.ops.split(","):
        for size in sizes:
            if time.time() - t0 > args.budget_s:
                break
            call = make_call(op, size, n, dtype, dev)
            iters = 50 if size <= (1 << 20) else (20 if size <= (64 << 20) else 5)
            for _ in range(5):
                call()
            torch.cuda.synchronize()
            dist.barrier()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                call()
            end.record()
            torch.cuda.synchronize()
            t_us = start.elapsed_time(end) * 1e3 / iters
            t = torch.tensor([t_us], device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)  # slowest rank, as nccl-tests reports
            t_us = float(t.item())
            algbw = size / (t_us * 1e-6) / 1e9
            row = dict(op=op, size_bytes=size, world=n, dtype=args.dtype, iters=iters, time_us=round(t_us, 3),
                       algbw_gbps=round(algbw, 3), busbw_gbps=round(algbw * bus_factor(op, n), 3))
            rows.append(row)
            if rank == 0:
                print(row, flush=True)
            del call
            torch.cuda.empty_cache()
    if rank == 0:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
