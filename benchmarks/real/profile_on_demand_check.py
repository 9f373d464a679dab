"""Check on a GPU box that the replay model profiles a missing signature on demand and fills the cache.

Builds a ``replay`` model with no profiles and a fresh cache, times two ops on
fake cuda tensors (as the simulator's shim would), and prints what the cache holds.

    PYTHONPATH=. python3 benchmarks/real/profile_on_demand_check.py /tmp/cache.sqlite
"""

from __future__ import annotations

import sys

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles import build_compute_model, get_gpu
from profiles.cache import ProfileCache


def main() -> None:
    path = sys.argv[1]
    gpu = get_gpu(sys.argv[2] if len(sys.argv) > 2 else "h100")
    model = build_compute_model("replay", gpu, profiles=[], cache=path, on_demand=True)
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(1000, 3000, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(3000, 2000, device="cuda", dtype=torch.bfloat16)
        mm = torch.ops.aten.mm.default
        t1 = model.time_op(mm, (a, b), {}, mm(a, b))
        sm = torch.ops.aten._softmax.default
        t2 = model.time_op(sm, (a, -1, False), {}, sm(a, -1, False))
    cache = ProfileCache(path)
    print(f"on-demand mm 1000x3000x2000 bf16: {t1}")
    print(f"on-demand softmax 1000x3000 bf16: {t2}")
    print(f"cache {path}: {len(cache)} entries for {gpu.key}: {sorted(cache.entries(gpu.key))}")
    ok = t1.source == t2.source == "profile" and len(cache) == 2
    print("on-demand check:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
