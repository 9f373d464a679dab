"""Host<->device copy time on a real GPU by size, pageable vs pinned, blocking vs ``non_blocking``.

``interpose/host_copies.py`` times every host copy at one bandwidth; this measures what a program's
``t.cuda()`` / ``t.to("cuda", non_blocking=True)`` / ``t.cpu()`` cost (host wall time until the copy is
done, CUDA-synchronized), so the shim's rule can be checked per kind. One JSON line per point:
``{"dir", "pinned", "non_blocking", "bytes", "median_us", "min_us", "max_us", "gbps"}``.

    python3 benchmarks/real/h2d_bandwidth.py [--repeats 15] > h2d.jsonl
    python3 benchmarks/real/h2d_bandwidth.py --context busy,fresh > h2d_context.jsonl

``--context`` measures copies as a training loop makes them instead of on an idle GPU (issue 19/20:
pageable copies in ``examples/copies`` ran at ~6 GB/s, half the idle figure), adding a ``"context"``
field: ``busy``, the copy issued behind ``BUSY_US`` of queued GPU work (``torch.cuda._sleep``), its
time counted from when that work ends (the sleep measured alone, same call, subtracted); ``fresh``, on an
idle GPU from a host tensor written by the CPU just before (a new batch), not one copied the call before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def copy_once(host: torch.Tensor, dev: torch.Tensor, to_gpu: bool, non_blocking: bool) -> torch.Tensor:
    """H2D as programs write it (``.to("cuda")``); D2H into ``host`` when pinned (a pinned destination is
    how programs get an async D2H), else ``.to("cpu")`` (a fresh pageable tensor)."""
    if to_gpu:
        return host.to("cuda", non_blocking=non_blocking)
    if host.is_pinned():
        return host.copy_(dev, non_blocking=non_blocking)
    return dev.to("cpu", non_blocking=non_blocking)


def time_copy(host: torch.Tensor, dev: torch.Tensor, to_gpu: bool, non_blocking: bool, repeats: int) -> list[float]:
    """Host wall time of :func:`copy_once` on an idle GPU, µs (CUDA-synchronized)."""
    out = []
    for i in range(repeats + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst = copy_once(host, dev, to_gpu, non_blocking)
        torch.cuda.synchronize()
        if i >= 2:
            out.append((time.perf_counter() - t0) * 1e6)
        del dst
    return out


BUSY_US = 5000.0
"""Queued GPU work ahead of a ``busy`` copy: longer than any copy here below 64 MiB."""


def sleep_cycles(us: float) -> int:
    """``torch.cuda._sleep`` cycles for about ``us`` µs, calibrated on this GPU."""
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    torch.cuda._sleep(1_000_000)
    e.record()
    e.synchronize()
    return int(1_000_000 * us / (s.elapsed_time(e) * 1e3))


def time_context(host: torch.Tensor, dev: torch.Tensor, to_gpu: bool, nb: bool, context: str, repeats: int,
                 cycles: int) -> list[float]:  # fmt: skip
    """Host wall time of one copy in ``context`` (``busy`` or ``fresh``), µs, net of the queued work."""
    out = []
    for i in range(repeats + 2):
        src = host
        if context == "fresh":  # the CPU writes the batch, then it is copied
            src = torch.empty_like(host, pin_memory=host.is_pinned()).fill_(i & 0xFF) if to_gpu else host
        torch.cuda.synchronize()
        if context == "busy":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            s.record()
            torch.cuda._sleep(cycles)
            e.record()
        else:
            t0 = time.perf_counter()
        dst = copy_once(src, dev, to_gpu, nb)
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) * 1e6
        if context == "busy":
            t -= s.elapsed_time(e) * 1e3  # from the end of the queued work
        if i >= 2:
            out.append(t)
        del dst
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--context", default="", help="comma list of busy,fresh (default: idle, the shipped curves)")
    args = ap.parse_args()
    contexts = args.context.split(",") if args.context else [""]
    cycles = sleep_cycles(BUSY_US) if args.context else 0
    for shift in range(16 if args.context else 10, 29, 2):  # 64 KiB (contexts) or 1 KiB .. 256 MiB
        n = 1 << shift
        for pinned in (False, True):
            host = torch.empty(n, dtype=torch.uint8, pin_memory=pinned).fill_(1)
            dev = host.to("cuda")
            for ctx in contexts:
                for to_gpu in (True, False):
                    for nb in (False, True):
                        if ctx:
                            ts = time_context(host, dev, to_gpu, nb, ctx, args.repeats, cycles)
                        else:
                            ts = time_copy(host, dev, to_gpu, nb, args.repeats)
                        med = statistics.median(ts)
                        print(json.dumps({
                            **({"context": ctx} if ctx else {}), "dir": "h2d" if to_gpu else "d2h",
                            "pinned": pinned, "non_blocking": nb, "bytes": n, "median_us": round(med, 2),
                            "min_us": round(min(ts), 2), "max_us": round(max(ts), 2),
                            "gbps": round(n / max(med, 1e-3) / 1e3, 3),
                        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
