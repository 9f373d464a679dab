"""GPT training with DistributedDataParallel, torchrun-style.

    torchrun --nproc-per-node 2 examples/ddp/train.py
    phantora run --scenario scenarios/h200x2.yaml examples/ddp/train.py
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
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import GPT, add_model_args, config_from, random_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_args(parser)
    parser.add_argument("--find-unused-parameters", action="store_true",
                        help="DDP(find_unused_parameters=True), as Hugging Face Trainer sets by default")
    args = parser.parse_args()

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank)
    torch.manual_seed(0)

    model = GPT(config_from(args)).to(device)
    model = DDP(model, device_ids=[local_rank], find_unused_parameters=args.find_unused_parameters)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    amp_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    times = []
    for step in range(args.steps):
        t0 = time.time()
        x, y = random_batch(args, device)
        with torch.autocast("cuda", dtype=amp_dtype, enabled=args.dtype == "bf16"):
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
        print(f"world size: {world}")
        print(f"mean ms/iter (excluding first): {mean:.2f}")
        print(f"max_memory_allocated: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
