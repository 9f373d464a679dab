"""The log-grid interpolator every family model fits per variant, and how it treats its nodes.

Split from :mod:`profiles.families.base` (the model interface); see :class:`LogGrid`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np


class LogGrid:
    """Multilinear interpolation of ``log(dur / ref)`` over the logs of a grid's axes.

    ``ref`` is a work proxy (FLOPs, bytes) given per point, so that what is
    interpolated is a log efficiency. Inside the grid this is the same as
    interpolating ``log dur`` when ``ref`` is a product of powers of the axes
    (GEMM FLOPs ∝ M·N·K). Outside it, a point below an axis' range takes the
    edge's time (small kernels sit on a launch floor), a point above it the
    edge's efficiency (big kernels take time in proportion to work). A point recorded
    more than once keeps its fastest timing. Grid nodes that were not recorded lie
    either between two recorded ones on an axis (lattices with different steps merged:
    interpolated along that axis) or past them (work caps: filled with the mean of
    their recorded neighbours' log efficiency, repeatedly); so are nodes that
    :func:`_drop_slow_outliers` finds slowed by the machine rather than the shape.
    """

    def __init__(
        self, points: Sequence[Sequence[float]], durs: Sequence[float], refs: Sequence[float]
    ) -> None:
        pts = np.log(np.asarray(points, dtype=float))
        t = np.log(np.asarray(durs, dtype=float))
        q = t - np.log(np.asarray(refs, dtype=float))
        keep = _fastest_of_repeats(pts, t)
        pts, t, q = pts[keep], t[keep], q[keep]
        self.nodes = [merge_close(pts[:, d]) for d in range(pts.shape[1])]
        grid = np.full([len(n) for n in self.nodes], np.nan)
        log_dur = np.full_like(grid, np.nan)
        # each point's nearest node per axis (first on a tie, as argmin), then the mean per node
        near = [np.abs(pts[:, d][:, None] - n[None, :]).argmin(axis=1) for d, n in enumerate(self.nodes)]
        cell, inv = np.unique(np.ravel_multi_index(near, grid.shape), return_inverse=True)
        inv = inv.ravel()
        count = np.bincount(inv)
        mean_q, mean_t = np.bincount(inv, weights=q) / count, np.bincount(inv, weights=t) / count
        for g in np.nonzero(count >= 8)[0]:  # np.mean sums 8 or more values pairwise: the same bits as before
            mean_q[g], mean_t[g] = np.mean(q[inv == g]), np.mean(t[inv == g])
        grid.flat[cell], log_dur.flat[cell] = mean_q, mean_t
        self.n_points = len(cell)
        self.n_outliers = _drop_slow_outliers(grid, log_dur)
        self.min_dur = float(np.exp(np.nanmin(np.where(np.isnan(grid), np.nan, log_dur))))
        """The fastest recorded node: no kernel of this grid runs faster (the launch floor)."""
        self.grid = _fill_nan(_interp_between(grid, self.nodes))

    def log_eff(self, x: Sequence[float]) -> float:
        lx = [math.log(max(v, 1e-30)) for v in x]
        lo_idx, ts = [], []
        for n, v in zip(self.nodes, lx, strict=True):
            if len(n) == 1:
                lo_idx.append(0)
                ts.append(0.0)
                continue
            v = min(max(v, float(n[0])), float(n[-1]))
            i = min(max(int(np.searchsorted(n, v)) - 1, 0), len(n) - 2)
            lo_idx.append(i)
            ts.append((v - float(n[i])) / float(n[i + 1] - n[i]))
        total = 0.0
        for corner in itertools.product((0, 1), repeat=len(lx)):
            w = 1.0
            idx = []
            for d, c in enumerate(corner):
                if len(self.nodes[d]) == 1:
                    if c:
                        w = 0.0
                    idx.append(0)
                    continue
                w *= ts[d] if c else 1.0 - ts[d]
                idx.append(lo_idx[d] + c)
            if w:
                total += w * float(self.grid[tuple(idx)])
        return total

    def lower(self, x: Sequence[float], floor: bool | Sequence[bool] = True) -> list[float]:
        """``x`` with coordinates below an axis' range raised to its first node (the launch floor), on the
        axes ``floor`` names (all by default)."""
        fl = [floor] * len(x) if isinstance(floor, bool) else list(floor)
        return [max(v, math.exp(float(n[0]))) if f else v for v, n, f in zip(x, self.nodes, fl, strict=True)]

    def predict(
        self, x: Sequence[float], ref: Callable[[Sequence[float]], float], floor: bool | Sequence[bool] = True
    ) -> float:
        """Duration at ``x``; ``ref`` maps a point to its work proxy, evaluated at :meth:`lower` of ``x``:
        below an axis that ``floor`` leaves out (a grid whose low edge is a kernel switch, not the launch
        floor) the time follows the edge's efficiency instead, down to the grid's fastest node while the
        first axis (the size) keeps its floor."""
        dur = math.exp(self.log_eff(x)) * ref(self.lower(x, floor))
        if floor is True or (not isinstance(floor, bool) and not floor[0]):
            return dur
        return max(dur, self.min_dur)


NODE_MERGE_LOG = math.log(1.05)
"""Axis values closer than 5% are one node: a bytes axis counts outputs too (``_foreach_norm``'s 4 bytes per
tensor), so the same grid level recorded with different tensor counts would otherwise make a node per point
and a grid of mostly filled-in holes."""


def merge_close(values: np.ndarray, tol: float = NODE_MERGE_LOG) -> np.ndarray:
    """Sorted node coordinates of one axis: runs of values within ``tol`` of the run's first become their mean."""
    out: list[list[float]] = []
    for v in np.unique(values):
        if out and v - out[-1][0] <= tol:
            out[-1].append(float(v))
        else:
            out.append([float(v)])
    return np.asarray([sum(r) / len(r) for r in out])


OUTLIER_LOG_RATIO = math.log(1.5)
"""A node more than 1.5x slower than the log-midpoint of its two neighbours on every axis is noise."""


def _drop_slow_outliers(grid: np.ndarray, log_dur: np.ndarray) -> int:
    """Set to NaN (in place) the nodes that no axis explains being slow (:data:`OUTLIER_LOG_RATIO`).

    The H200 sweep holds isolated points 5-8x slower than their neighbours with the
    p10 of their own 5 timings just as slow (the machine, not the kernel: the same
    shapes re-measured in other files take the neighbours' time). A real regime
    change (a row length with a slower kernel) is slow along the other axes' neighbours
    too, so it survives. Along each axis a node is judged against what it has there: both
    neighbours, the log-midpoint of their efficiency; only the larger one (a low edge), its
    time (a kernel with less work is not slower); only the smaller one (a high edge), its
    efficiency. Dropped when slow on every axis. Upward only: noise does not make kernels faster.
    ``grid`` holds log efficiencies, ``log_dur`` log times.
    """

    known = ~np.isnan(grid)
    any_res = np.zeros(grid.shape, dtype=bool)
    all_slow = np.ones(grid.shape, dtype=bool)
    for d in range(grid.ndim):  # every node at once, along one axis at a time
        g_lo, g_hi, t_hi = _shifted(grid, d, -1), _shifted(grid, d, 1), _shifted(log_dur, d, 1)
        lo, hi = ~np.isnan(g_lo), ~np.isnan(g_hi)
        with np.errstate(invalid="ignore"):
            res = np.where(lo & hi, grid - (g_lo + g_hi) / 2,
                           np.where(hi, log_dur - t_hi, np.where(lo, grid - g_lo, np.nan)))
        has = lo | hi
        any_res |= has
        all_slow &= ~has | (res > OUTLIER_LOG_RATIO)
    drop = known & any_res & all_slow
    grid[drop] = np.nan
    return int(drop.sum())


def _shifted(a: np.ndarray, axis: int, step: int) -> np.ndarray:
    """``out[i] = a[i + step]`` along ``axis``; NaN where that is off the grid."""
    out = np.full_like(a, np.nan)
    src, dst = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    n = a.shape[axis]
    if abs(step) < n:
        src[axis] = slice(max(step, 0), n + min(step, 0))
        dst[axis] = slice(max(-step, 0), n + min(-step, 0))
        out[tuple(dst)] = a[tuple(src)]
    return out


def _fastest_of_repeats(pts: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Indices keeping, of points recorded more than once at the same coordinates (two sweeps that share
    lattice points), the fastest: the machine only ever slows a kernel down (a 64 × 256 fp32 row sum took
    4.8 us in one sweep and 31.6 us, p90 72 us, in the next), so the minimum is the kernel's time."""
    best: dict[bytes, int] = {}
    for i, row in enumerate(pts):
        k = row.tobytes()
        j = best.get(k)
        if j is None or t[i] < t[j]:
            best[k] = i
    return np.asarray(sorted(best.values()), dtype=int)


def _interp_between(grid: np.ndarray, nodes: list[np.ndarray]) -> np.ndarray:
    """Unrecorded nodes that lie between two recorded ones on an axis, linearly interpolated there (log
    coordinates), axis by axis in order. A lattice merged from sweeps with different steps (row lengths on a
    √2 ladder, each with its own row counts) has such holes on every line; the neighbour mean of
    :func:`_fill_nan` would average across row lengths instead of along the rows each length has."""
    g = grid.copy()
    for d in range(g.ndim):
        if g.shape[d] < 3:
            continue
        x = np.asarray(nodes[d], dtype=float)
        lines = np.moveaxis(g, d, -1).reshape(-1, g.shape[d])
        for line in lines:
            known = ~np.isnan(line)
            if known.sum() < 2 or known.all():
                continue
            idx = np.nonzero(known)[0]
            inner = ~known & (np.arange(len(line)) > idx[0]) & (np.arange(len(line)) < idx[-1])
            line[inner] = np.interp(x[inner], x[known], line[known])
        g = np.moveaxis(lines.reshape(np.moveaxis(g, d, -1).shape), -1, d)
    return g


def _fill_nan(grid: np.ndarray) -> np.ndarray:
    g = grid.copy()
    while np.isnan(g).any():
        filled = g.copy()
        for idx in zip(*np.nonzero(np.isnan(g)), strict=True):
            nb = []
            for d in range(g.ndim):
                for s in (-1, 1):
                    j = list(idx)
                    j[d] += s
                    if 0 <= j[d] < g.shape[d] and not np.isnan(g[tuple(j)]):
                        nb.append(g[tuple(j)])
            if nb:
                filled[idx] = float(np.mean(nb))
        if np.isnan(filled).sum() == np.isnan(g).sum():
            filled[np.isnan(filled)] = 0.0  # nothing recorded at all
        g = filled
    return g
