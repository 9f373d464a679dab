"""GPT training on a 2D mesh: tensor parallel (DTensor) inside ``tp`` groups, FSDP2 across ``dp``.

    torchrun --nproc-per-node 2 examples/tp2d/train.py --tp 2
    phantora run --nnodes 2 --nproc-per-node 8 examples/tp2d/train.py --tp 8
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ddp"))
from model import GPT, add_model_args, config_from, random_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_args(parser)
    parser.add_argument("--tp", type=int, default=2, help="tensor-parallel degree (divides the world size)")
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    tp = min(args.tp, world)
    mesh = init_device_mesh("cuda", (world // tp, tp), mesh_dim_names=("dp", "tp"))
    torch.manual_seed(0)

    model = GPT(config_from(args)).to(device)
    plan = {
        "attn.q": ColwiseParallel(), "attn.k": ColwiseParallel(), "attn.v": ColwiseParallel(),
        "attn.proj": RowwiseParallel(), "mlp.fc": ColwiseParallel(), "mlp.proj": RowwiseParallel(),
    }
    param_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for block in model.blocks:
        parallelize_module(block, mesh["tp"], plan)
        fully_shard(block, mesh=mesh["dp"], mp_policy=mp)
    fully_shard(model, mesh=mesh["dp"], mp_policy=mp)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, foreach=True)

    times = []
    for step in range(args.steps):
        t0 = time.time()
        x, y = random_batch(args, device)
        logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt_ms = (time.time() - t0) * 1e3
        times.append(dt_ms)
        if rank == 0:
            print(f"step {step} | loss {loss.item():.4f} | {dt_ms:.2f} ms", flush=True)
    if rank == 0:
        mean = sum(times[1:]) / max(len(times) - 1, 1)
        print(f"world size: {world} (dp={world // tp}, tp={tp})")
        print(f"mean ms/iter (excluding first): {mean:.2f}")
        print(f"max_memory_allocated: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
