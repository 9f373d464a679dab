"""Per-iteration time breakdown of a rank: compute, exposed communication, idle.

*Compute* is the union of the rank's GPU kernel intervals (any stream); *exposed
communication* is time when a collective is in flight and no kernel runs (communication
hidden under compute is not counted); *idle* is the rest of the iteration.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def merge(intervals: Iterable[tuple[float, float]]) -> np.ndarray:
    """Sorted, non-overlapping union of ``(start, end)`` intervals as an (n, 2) array."""
    arr = np.array([iv for iv in intervals if iv[1] > iv[0]], dtype=float).reshape(-1, 2)
    if len(arr) == 0:
        return arr
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    ends = np.maximum.accumulate(arr[:, 1])
    new = np.empty(len(arr), dtype=bool)
    new[0] = True
    new[1:] = arr[1:, 0] > ends[:-1]
    starts = arr[new, 0]
    idx = np.flatnonzero(new)
    last = np.append(idx[1:] - 1, len(arr) - 1)
    return np.stack([starts, ends[last]], axis=1)


def covered(merged: np.ndarray, a: float, b: float) -> float:
    """Length of ``merged`` ∩ [a, b)."""
    if len(merged) == 0 or b <= a:
        return 0.0
    lo = np.clip(merged[:, 0], a, b)
    hi = np.clip(merged[:, 1], a, b)
    return float(np.sum(hi - lo))


def iteration_breakdown(rank: int, ops: list, iterations: list[tuple[float, float]]) -> list[dict]:
    """Rows (rank, iteration, start_us, end_us, dur_us, compute_us, exposed_comm_us, idle_us)."""
    compute = merge((o.start_us, o.start_us + o.dur_us) for o in ops if o.source != "external")
    both = merge([(o.start_us, o.start_us + o.dur_us) for o in ops])
    rows = []
    for i, (a, b) in enumerate(iterations):
        c = covered(compute, a, b)
        comm = covered(both, a, b) - c
        rows.append({
            "rank": rank, "iteration": i, "start_us": a, "end_us": b, "dur_us": b - a,
            "compute_us": c, "exposed_comm_us": comm, "idle_us": max(0.0, (b - a) - c - comm),
        })
    return rows
