"""Pipeline parallelism with ``torch.distributed.pipelining``: one stage per rank, GPipe or 1F1B.

    torchrun --nproc-per-node 4 examples/pipeline/train.py --schedule 1f1b
    phantora run --scenario scenarios/h200x8.yaml --nproc-per-node 4 examples/pipeline/train.py

A stack of ``--layers`` MLP blocks (``--dim`` wide) is cut into equal stages; activations go
forward and gradients backward between neighbouring ranks with batched send/recv.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe


def block(dim: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch, split into micro-batches")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--schedule", choices=["gpipe", "1f1b"], default="1f1b")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(0)
    if args.layers % world:
        raise SystemExit(f"--layers {args.layers} must be a multiple of the world size {world}")
    per = args.layers // world
    stage_mod = nn.Sequential(*(block(args.dim) for _ in range(per))).to(device, torch.bfloat16)
    stage = PipelineStage(stage_mod, rank, world, device)
    schedule = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[args.schedule]
    sched = schedule(stage, n_microbatches=args.microbatches, loss_fn=lambda out, tgt: ((out - tgt) ** 2).mean())
    opt = torch.optim.AdamW(stage_mod.parameters(), lr=1e-4, fused=True)

    shape = (args.batch_size, args.seq_len, args.dim)
    times = []
    for step in range(args.steps):
        t0 = time.time()
        x = torch.randn(shape, device=device, dtype=torch.bfloat16)
        target = torch.randn(shape, device=device, dtype=torch.bfloat16)
        if rank == 0:
            sched.step(x)
        elif rank == world - 1:
            sched.step(target=target)
        else:
            sched.step()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append((time.time() - t0) * 1e3)
        if rank == 0:
            print(f"step {step} | {times[-1]:.2f} ms", flush=True)
    if rank == 0:
        print(f"stages: {world}, micro-batches: {args.microbatches}, schedule: {args.schedule}")
        print(f"mean ms/iter (excluding first): {sum(times[1:]) / max(len(times) - 1, 1):.2f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
