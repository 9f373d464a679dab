"""Small summaries of a real run's host and GPU profiles, to attribute a simulated-vs-real gap (issue 20).

``frameworks_timing.py --cprofile F --kineto F`` calls these on the GPU host; the files come back in
the device call's tarball. Per timed step (steps after the warm-up ones, bounded by the harness's step
markers) the kineto summary gives the wall time, the GPU's kernel-busy time (union of kernel
intervals), the copies by kind (pageable / pinned, bytes and time), and the host's blocking calls
(stream/device/event synchronize, synchronous memcpy) with their count and time: what a gap is made
of, so it can be named instead of guessed.
"""

from __future__ import annotations

import io
import json
import pstats
import statistics
from typing import Any

STEP_MARK = "##phantora_step_end##"
_BLOCKING = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
             "cuStreamSynchronize", "cudaStreamWaitEvent")  # fmt: skip


def write_cprofile(cp: Any, path: str) -> None:
    cp.dump_stats(path + ".pstats")  # every function, for a side-by-side with the shim's run (pstats.Stats)
    buf = io.StringIO()
    st = pstats.Stats(cp, stream=buf).strip_dirs()
    st.sort_stats("tottime").print_stats(45)
    st.sort_stats("cumulative").print_stats(45)
    with open(path, "w") as f:
        f.write(buf.getvalue())


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def write_kineto(prof: Any, path: str, ends: list[float], warmup: int = 2) -> None:
    events = list(prof.events())
    marks = sorted(e.time_range.start for e in events if e.name == STEP_MARK)
    steps = []
    for i in range(warmup, len(marks) - 1):
        lo, hi = marks[i], marks[i + 1]
        # record_function ranges (FSDP's "FSDP::pre_forward", ...) have a GPU-side twin spanning the kernels
        # they launched, idle gaps included: not kernels (torch's own tables leave them out the same way)
        gpu = [e for e in events if e.device_type.name == "CUDA" and lo <= e.time_range.start < hi
               and not getattr(e, "is_user_annotation", False)]
        kernels = [(e.time_range.start, e.time_range.end) for e in gpu if not e.name.startswith(("Memcpy", "Memset"))]
        copies: dict[str, list[float]] = {}
        for e in gpu:
            if e.name.startswith("Memcpy"):
                c = copies.setdefault(e.name, [0, 0.0])
                c[0] += 1
                c[1] += (e.time_range.end - e.time_range.start) / 1e3
        blocking: dict[str, list[float]] = {}
        for e in events:
            if e.device_type.name == "CPU" and e.name.startswith(_BLOCKING) and lo <= e.time_range.start < hi:
                b = blocking.setdefault(e.name, [0, 0.0])
                b[0] += 1
                b[1] += (e.time_range.end - e.time_range.start) / 1e3
        steps.append({
            "wall_ms": (hi - lo) / 1e3, "kernel_busy_ms": _union_us(kernels) / 1e3, "kernels": len(kernels),
            "copies": {k: [v[0], round(v[1], 4)] for k, v in copies.items()},
            "blocking": {k: [v[0], round(v[1], 4)] for k, v in blocking.items()},
        })  # fmt: skip
    summary: dict[str, Any] = {"steps": steps}
    if steps:
        summary["median"] = {k: statistics.median(s[k] for s in steps) for k in ("wall_ms", "kernel_busy_ms", "kernels")}
    if len(marks) > warmup + 1:  # self CPU per op name over the timed steps only (no set-up, no warm-up)
        lo, hi, n = marks[warmup], marks[-1], len(marks) - 1 - warmup
        own: dict[str, list[float]] = {}
        for e in events:
            if e.device_type.name == "CPU" and lo <= e.time_range.start < hi:
                o = own.setdefault(e.name, [0, 0.0])
                o[0] += 1
                o[1] += e.self_cpu_time_total
        steady = sorted(own.items(), key=lambda kv: kv[1][1], reverse=True)[:60]
        summary["steady_self_cpu_us_per_step"] = [[k, round(c / n, 2), round(t / n, 1)] for k, (c, t) in steady]
    ka = prof.key_averages()
    top = sorted(ka, key=lambda a: a.self_cpu_time_total, reverse=True)[:40]
    summary["top_self_cpu_us"] = [[a.key, a.count, round(a.self_cpu_time_total, 1)] for a in top]

    def dev_us(a: Any) -> float:
        return float(getattr(a, "self_device_time_total", getattr(a, "self_cuda_time_total", 0.0)))

    gpu_top = sorted((a for a in ka if dev_us(a) > 0 and not getattr(a, "is_user_annotation", False)),
                     key=dev_us, reverse=True)[:60]
    summary["top_gpu_us"] = [[a.key[:120], a.count, round(dev_us(a), 1)] for a in gpu_top]
    """Kernels (and the ops that launched them) by GPU time over the whole profiled run, warm-up included."""
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
