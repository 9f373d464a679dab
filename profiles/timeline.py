"""Replay a recorded op trace on a two-clock (host, GPU) timeline: the simulator's timing rule, in miniature.

Validates a profile against the real run it came from without the shim: the
host clock advances by each op's launch cost (``launch_us`` plus, optionally,
the script's own Python time ``host_gap_us``); a kernel starts when both it is
launched and the GPU is free; ops that copy a value to the host
(``_local_scalar_dense`` ...) make the host wait for the GPU. Iterations are
delimited by the optimizer's step op, as in the real loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from profiles.store import ProfileEntry

SYNC_OPS = frozenset(
    {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default", "aten.unique_consecutive.default"}
)
"""Ops whose result the host must read (the host waits for the GPU)."""


@dataclass(frozen=True, slots=True)
class TraceReplay:
    total_us: float
    iter_us: float | None
    """Steady-state time between consecutive optimizer steps; ``None`` with fewer than two."""
    iterations: int
    gpu_busy_us: float
    missing: int
    """Trace ops with no entry (counted as zero time)."""


def replay_trace(
    keys: Iterable[str], entries: dict[str, ProfileEntry], *, host_gap: bool = True, skip_iters: int = 1
) -> TraceReplay:
    """Time a trace of signature keys; ``iter_us`` averages iterations after the first ``skip_iters``."""
    host = gpu = busy = 0.0
    missing = 0
    marks: list[float] = []
    marker: str | None = None
    for key in keys:
        e = entries.get(key)
        if e is None:
            missing += 1
            continue
        host += e.launch_us + ((e.host_gap_us or 0.0) if host_gap else 0.0)
        start = max(host, gpu)
        gpu = start + e.dur_us
        busy += e.dur_us
        if e.op in SYNC_OPS:
            host = gpu
        if marker is None and e.family == "optimizer":
            marker = key
        if key == marker:
            marks.append(max(host, gpu))
    marks = marks[skip_iters:]
    iter_us = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) >= 2 else None
    return TraceReplay(max(host, gpu), iter_us, len(marks), busy, missing)
