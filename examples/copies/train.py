"""A training loop whose batch sits in host memory and is copied to the GPU every step, pageable or
pinned (``--pin``): how much of a step the host<->device copy takes, and whether it overlaps the
compute (a pinned ``non_blocking`` copy can; a pageable one holds the host until it is done).

    python examples/copies/train.py --batch 2048 --dim 2048 [--pin]
    phantora run --scenario scenarios/h200x1.yaml examples/copies/train.py --batch 2048 --dim 2048 --pin
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--pin", action="store_true")
    args = ap.parse_args()
    host_x = torch.randn(args.batch, args.dim)
    host_y = torch.randint(0, 10, (args.batch,))
    if args.pin:
        host_x, host_y = host_x.pin_memory(), host_y.pin_memory()
    model = nn.Sequential(nn.Linear(args.dim, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(args.steps):
        x, y = host_x.cuda(non_blocking=True), host_y.cuda(non_blocking=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print(f"loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
