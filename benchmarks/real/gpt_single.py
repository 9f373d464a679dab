"""examples/ddp/train.py without DDP: the same model, loop and timing print, for one simulated GPU.

Used by profile_accuracy.py --sim to run the accuracy configs through the
simulator's shim (interpose) while ``phantora run`` cannot yet launch the
distributed example at world size 1. The real runs it is compared with are of
examples/ddp/train.py itself (DDP over NCCL at world size 1 adds gradient-bucket copies).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "ddp"))
from model import GPT, add_model_args, config_from, random_batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(p)
    args = p.parse_args()
    device = torch.device("cuda", 0)
    torch.manual_seed(0)
    model = GPT(config_from(args)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    times = []
    for _ in range(args.steps):
        t0 = time.time()
        x, y = random_batch(args, device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            logits = model(x)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append((time.time() - t0) * 1e3)
    print(f"mean ms/iter (excluding first): {sum(times[1:]) / max(len(times) - 1, 1):.2f}")


if __name__ == "__main__":
    main()
