"""Which allocations a Linear's backward makes on a GPU, with their C++ stacks (memory history, ``stacks="all"``).

Found the reduction scratch (``interpose/reduce_scratch.py``): a ``Linear(2048, 8192)`` with bias at batch 1024
allocates a second 64 MiB block in backward, under ``gpu_reduce_kernel`` (the bias gradient's ``sum(0)``).
Also prints the weight gradient's strides at its hook. Runs on the CPU too (hooks only)::

    python3 benchmarks/real/reduce_scratch_probe.py
"""
from __future__ import annotations

import torch
from torch import nn

torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
m = nn.Sequential(nn.Linear(2048, 8192), nn.GELU(), nn.Linear(8192, 10)).to(dev)
W1 = m[0].weight
W1.register_hook(lambda g: print("hook grad", tuple(g.shape), g.stride(), g.is_contiguous(), flush=True))
for _step in range(2):
    x = torch.randn(1024, 2048, device=dev)
    y = torch.randint(0, 10, (1024,), device=dev)
    if dev == "cuda":
        torch.cuda.synchronize()
    loss = nn.functional.cross_entropy(m(x), y)
    if dev == "cuda":
        torch.cuda.memory._record_memory_history(enabled="all", context="all", stacks="all")
    loss.backward()
    if dev == "cuda":
        snap = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        for e in snap["device_traces"][0]:
            if e["action"] == "alloc" and e["size"] >= 32 << 20:
                fr = [f["name"] for f in e.get("frames", []) if not f["filename"].endswith(".py")][:12]
                print("alloc", e["size"] >> 20, "MiB", " < ".join(fr)[:900], flush=True)
    print("grad", W1.grad.stride(), flush=True)
    W1.grad = None
