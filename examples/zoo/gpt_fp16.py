"""nanoGPT's fp16 recipe on the example GPT (examples/gpt/train.py's model): fp16 autocast with a
``torch.amp.GradScaler`` (unscale, clip, step, update), fused AdamW. Runs on a real GPU
(``python examples/zoo/gpt_fp16.py``) and under ``phantora run``.

Prints one JSON line: per-step ms (host clock around a synchronised step) and max_memory_allocated.
"""

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location("gpt_train", Path(__file__).resolve().parent.parent / "gpt" / "train.py")
gpt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpt)

p = argparse.ArgumentParser()
p.add_argument("--n-layer", type=int, default=12)
p.add_argument("--n-embd", type=int, default=768)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--seq-len", type=int, default=1024)
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()

torch.manual_seed(1337)
model = gpt.GPT(50304, a.seq_len, a.n_layer, a.n_embd // 64, a.n_embd).cuda()
opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
scaler = torch.amp.GradScaler("cuda")
ms = []
for _ in range(a.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    x = torch.randint(0, 50304, (a.batch_size, a.seq_len)).pin_memory().cuda(non_blocking=True)
    y = torch.randint(0, 50304, (a.batch_size, a.seq_len)).pin_memory().cuda(non_blocking=True)
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    ms.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"program": "gpt_fp16", "args": vars(a), "step_ms": [round(x, 3) for x in ms],
                  "max_memory_allocated": torch.cuda.max_memory_allocated()}))
