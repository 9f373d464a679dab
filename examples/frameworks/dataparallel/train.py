"""``nn.DataParallel``: one process drives every visible GPU (pytorch/examples ImageNet's
single-process path). Each step scatters the batch, replicates the model, runs the replicas and
gathers their outputs on device 0.

Runs for real (``python train.py`` on a multi-GPU host) and unchanged under phantora with the
devices made visible to its one process:
``CUDA_VISIBLE_DEVICES=0,1 phantora run --nproc-per-node 1 examples/frameworks/dataparallel/train.py``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()

    model = nn.Sequential(nn.Linear(args.dim, 4 * args.dim), nn.GELU(), nn.Linear(4 * args.dim, 10)).cuda()
    dp = nn.DataParallel(model)  # every visible device
    opt = torch.optim.SGD(dp.parameters(), lr=0.1, momentum=0.9)
    for _ in range(args.steps):
        x = torch.randn(args.batch_size, args.dim).cuda(non_blocking=True)
        y = torch.randint(0, 10, (args.batch_size,)).cuda(non_blocking=True)
        loss = nn.functional.cross_entropy(dp(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print(f"{args.steps} steps on {len(dp.device_ids)} devices, loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
