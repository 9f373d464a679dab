"""Host<->device copy time on a real GPU by size, pageable vs pinned, blocking vs ``non_blocking``.

``interpose/host_copies.py`` times every host copy at one bandwidth; this measures what a program's
``t.cuda()`` / ``t.to("cuda", non_blocking=True)`` / ``t.cpu()`` cost (host wall time until the copy is
done, CUDA-synchronized), so the shim's rule can be checked per kind. One JSON line per point:
``{"dir", "pinned", "non_blocking", "bytes", "median_us", "min_us", "max_us", "gbps"}``.

    python3 benchmarks/real/h2d_bandwidth.py [--repeats 15] > h2d.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def time_copy(host: torch.Tensor, dev: torch.Tensor, to_gpu: bool, non_blocking: bool, repeats: int) -> list[float]:
    """H2D as programs write it (``.to("cuda")``); D2H into ``host`` when pinned (a pinned destination is
    how programs get an async D2H), else ``.to("cpu")`` (a fresh pageable tensor)."""
    out = []
    for i in range(repeats + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        if to_gpu:
            dst = host.to("cuda", non_blocking=non_blocking)
        elif host.is_pinned():
            dst = host.copy_(dev, non_blocking=non_blocking)
        else:
            dst = dev.to("cpu", non_blocking=non_blocking)
        torch.cuda.synchronize()
        if i >= 2:
            out.append((time.perf_counter() - t0) * 1e6)
        del dst
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    for shift in range(10, 29, 2):  # 1 KiB .. 256 MiB
        n = 1 << shift
        for pinned in (False, True):
            host = torch.empty(n, dtype=torch.uint8, pin_memory=pinned).fill_(1)
            dev = host.to("cuda")
            for to_gpu in (True, False):
                for nb in (False, True):
                    ts = time_copy(host, dev, to_gpu, nb, args.repeats)
                    med = statistics.median(ts)
                    print(json.dumps({
                        "dir": "h2d" if to_gpu else "d2h", "pinned": pinned, "non_blocking": nb, "bytes": n,
                        "median_us": round(med, 2), "min_us": round(min(ts), 2), "max_us": round(max(ts), 2),
                        "gbps": round(n / med / 1e3, 3),
                    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
