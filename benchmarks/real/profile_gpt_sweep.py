"""GPT family sweep: a few DDP training steps of the examples' GPT for every (hidden, seq, batch) in a grid.

Same model (examples/ddp/model.py) and loop as examples/ddp/train.py — bf16
autocast, fused AdamW, causal SDPA, DDP gradient buckets — with 2 layers (the
per-layer ops repeat, so more layers add no signatures). Run under ``phantora
profile`` (which turns the process group into a fake one) so every distinct op
signature of the family is timed once. Configs go from small to large, stop
at ``--budget-s``, and skip on out-of-memory, so the sweep fits a device-time budget.

    python3 -m phantora profile --gpu-name h100 --out profiles/data/h100/sweep_bf16.jsonl \
        benchmarks/real/profile_gpt_sweep.py --hidden 512,1024 --seq 512,1024 --batch 1,4 --dtype bf16
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "ddp"))
from model import GPT, GPTConfig


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=ints, default=[512, 1024, 2048, 4096])
    p.add_argument("--seq", type=ints, default=[512, 1024, 2048, 4096])
    p.add_argument("--batch", type=ints, default=[1, 4, 16])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=65536, help="skip configs with batch*seq above this")
    p.add_argument("--budget-s", type=float, default=1e9, help="stop starting new configs after this many seconds")
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    dist.init_process_group("nccl" if a.device == "cuda" else "gloo")
    dev = torch.device(a.device)
    grid = sorted(itertools.product(a.hidden, a.seq, a.batch), key=lambda c: c[0] * c[0] * c[1] * c[2])
    t_start = time.perf_counter()
    for hidden, seq, batch in grid:
        if batch * seq > a.max_tokens:
            continue
        if time.perf_counter() - t_start > a.budget_s:
            print(f"sweep: budget reached, stopping before hidden={hidden} seq={seq} batch={batch}")
            break
        t0 = time.perf_counter()
        model = opt = None
        try:
            torch.manual_seed(0)
            cfg = GPTConfig(a.vocab, seq, a.layers, max(1, hidden // 64), hidden)
            model = DDP(GPT(cfg).to(dev))
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=dev.type == "cuda")
            for _ in range(a.steps):
                data = torch.randint(0, a.vocab, (batch, seq + 1)).to(dev, non_blocking=True)
                x, y = data[:, :-1], data[:, 1:]
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
                    logits = model(x)
                    loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss.item()
            status = "ok"
        except torch.OutOfMemoryError:
            status = "oom"
        model = opt = logits = loss = None
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        print(f"sweep {a.dtype} hidden={hidden} seq={seq} batch={batch}: {status} {time.perf_counter() - t0:.1f}s", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
