"""Host microseconds per fake GPU op under the interpose shim (vs. plain FakeTensorMode).

Usage: python benchmarks/interpose_overhead.py [--n 2000]
Prints one line per case: the shim's cost per op and a bare FakeTensorMode's.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

import profiles
from interpose import RankConfig, interposed
from interpose.cuda_guard import ensure_cuda_guard


def _bench(fn, n: int) -> float:
    fn()  # warm caches
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    ensure_cuda_guard()  # bare FakeTensorMode autograd on cuda needs it too
    real_perf = time.perf_counter  # the shim patches time.perf_counter; keep the real one
    gpu = profiles.get_gpu("h100")
    cfg = RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero")
    cases = {
        "add (x + x)": lambda x, w, b: x + x,
        "linear (F.linear)": lambda x, w, b: F.linear(x, w, b),
        "linear fwd+bwd": lambda x, w, b: F.linear(x, w, b).sum().backward(),
    }
    with FakeTensorMode():
        x = torch.randn(512, 512, device="cuda")
        w = torch.randn(512, 512, device="cuda", requires_grad=True)
        b = torch.randn(512, device="cuda", requires_grad=True)
        bare = {k: _bench(lambda f=f: f(x, w, b), n) for k, f in cases.items() if "bwd" not in k}
    with interposed(cfg) as rt:
        time.perf_counter = real_perf
        x = torch.randn(512, 512, device="cuda")
        w = torch.randn(512, 512, device="cuda", requires_grad=True)
        b = torch.randn(512, device="cuda", requires_grad=True)
        shim = {}
        for k, f in cases.items():
            ops0 = len(rt._op_rows)
            us = _bench(lambda f=f: f(x, w, b), n)
            per_call = (len(rt._op_rows) - ops0) / (n + 1)
            shim[k] = (us, per_call)
    for k, (us, per_call) in shim.items():
        ref = f"{bare[k]:8.1f}" if k in bare else "     n/a"
        print(
            f"{k:20s} shim {us:8.1f} us/call ({per_call:.0f} GPU ops/call)   bare FakeTensorMode {ref} us/call"
        )


if __name__ == "__main__":
    main()
