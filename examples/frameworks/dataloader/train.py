"""DataLoader workers in every rank: a small MLP trained from a map-style dataset through
``DataLoader(num_workers=N)`` (and ``DistributedSampler`` under torchrun).

Runs for real (``python train.py`` or ``torchrun --nproc-per-node 2 train.py``) and unchanged
under ``phantora run``. ``--pid-dir`` makes every worker write a file named by its pid (tests check
the workers died with the rank); ``--fail-at-step`` raises there (with the workers alive).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class Samples(Dataset):
    """Random features computed on the host, with some real CPU work per sample."""

    def __init__(self, n: int, dim: int, pid_dir: str | None, work_ms: float) -> None:
        self.n, self.dim, self.pid_dir, self.work_ms = n, dim, pid_dir, work_ms

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pid_dir:
            info = torch.utils.data.get_worker_info()
            shim = "shim" if torch.cuda.is_available() else "host"  # a worker is a host process
            Path(self.pid_dir, f"{os.getpid()}.{info.id if info else 'main'}.{shim}").touch()
        end = time.thread_time() + self.work_ms / 1e3
        while time.thread_time() < end:  # decoding/augmentation stand-in
            pass
        g = torch.Generator().manual_seed(i)
        return torch.randn(self.dim, generator=g), torch.tensor(i % 10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default=None)
    ap.add_argument("--pin-memory", action="store_true")
    ap.add_argument("--persistent-workers", action="store_true")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--work-ms", type=float, default=0.0)
    ap.add_argument("--pid-dir", default=None)
    ap.add_argument("--fail-at-step", type=int, default=-1)
    args = ap.parse_args()

    distributed = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    ds = Samples(args.samples, args.dim, args.pid_dir, args.work_ms)
    sampler = DistributedSampler(ds) if distributed else None
    dl = DataLoader(ds, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                    num_workers=args.workers, pin_memory=args.pin_memory,
                    persistent_workers=args.persistent_workers and args.workers > 0,
                    multiprocessing_context=args.start_method if args.workers > 0 else None)
    model: nn.Module = nn.Sequential(nn.Linear(args.dim, 4 * args.dim), nn.GELU(), nn.Linear(4 * args.dim, 10)).cuda()
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step = 0
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for x, y in dl:
            if step == args.fail_at_step:
                raise RuntimeError(f"failing at step {step} as asked")
            x, y = x.cuda(non_blocking=True), y.cuda(non_blocking=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
    if not distributed or dist.get_rank() == 0:
        print(f"trained {step} steps, loss {loss.item():.3f}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
