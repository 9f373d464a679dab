"""Host time charged per loop iteration under ``host_time="zero"`` and ``"measured"``.

Usage: python benchmarks/interpose_host_time.py [--n 2000]
Each loop body does no script work besides the tensor calls, so anything
``measured`` charges beyond ``zero`` (launch overheads) is shim cost leaking into
the script's host time.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import profiles
from interpose import RankConfig, interposed


def measure(mode: str, case: str, n: int) -> tuple[float, float]:
    gpu = profiles.get_gpu("h100")
    cfg = RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time=mode)
    with interposed(cfg) as rt:
        x = torch.randn(512, 512, device="cuda")
        w = torch.randn(512, 512, device="cuda", requires_grad=True)
        m = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256)).cuda()
        xi = torch.randn(32, 256, device="cuda")
        body = {
            "python only": lambda: sum(range(50)),
            "x.view(-1)": lambda: x.view(-1),
            "x + x": lambda: x + x,
            "linear fwd+bwd": lambda: F.linear(x, w).sum().backward(),
            "mlp fwd+bwd": lambda: m(xi).sum().backward(),
        }[case]
        for _ in range(50):
            body()
        ops0 = len(rt.result().ops)
        h0 = rt.clock.now_us()
        for _ in range(n):
            body()
        host = (rt.clock.now_us() - h0) / n
        return host, (len(rt.result().ops) - ops0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    for case in ("python only", "x.view(-1)", "x + x", "linear fwd+bwd", "mlp fwd+bwd"):
        zero, ops = measure("zero", case, n)
        measured, _ = measure("measured", case, n)
        print(f"{case:16s} gpu ops {ops:4.0f}   zero {zero:8.1f} us/iter   measured {measured:8.1f} us/iter")


if __name__ == "__main__":
    main()
