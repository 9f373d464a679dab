"""A local correction on top of a lattice, learnt from off-lattice fit points (issue 17).

cuBLAS runs shapes between powers of two with other tiles and waves than the power-of-two lattice shows:
on the H200's ``sweep_offgrid_gemm`` (4,294 random M, N, K) the lattice is 3-6% fast on average with a
spread no single tile rule explains (docs/validation.md). What does carry over is local: the median
log(real / lattice) of the nearest off-lattice points of the same variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class OffgridCorrection:
    """Per variant, the off-lattice points' log coordinates and log(real / lattice); a query takes the
    median of its :data:`OFFGRID_NEIGHBOURS` nearest (Euclidean in log coordinates)."""

    def __init__(self) -> None:
        self.variants: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, by: dict[tuple, tuple[list[list[float]], list[float]]]) -> None:
        """``by``: per variant, points (linear coordinates) and their log(real / lattice); a variant is kept
        only where the correction helps its own points leave-one-out (:func:`_corrects`)."""
        self.variants = {}
        for v, (xs, rs) in by.items():
            x = np.log(np.maximum(np.asarray(xs, dtype=float), 1e-30))
            r = np.asarray(rs, dtype=float)
            if _corrects(x, r):
                self.variants[v] = (x, r)

    def factor(self, variant: tuple, x: Sequence[float]) -> float:
        """exp of the median log(real / lattice) of the nearest points of ``variant``; 1 where none."""
        got = self.variants.get(variant)
        if got is None:
            return 1.0
        xs, rs = got
        lx = np.log(np.maximum(np.asarray(x, dtype=float), 1e-30))
        near = np.argsort(((xs - lx) ** 2).sum(axis=1), kind="stable")[:OFFGRID_NEIGHBOURS]
        return float(math.exp(float(np.median(rs[near]))))


def _corrects(xs: np.ndarray, rs: np.ndarray) -> bool:
    """Whether the neighbours' correction helps this variant's off-lattice points, leave-one-out: each point
    predicted from its :data:`OFFGRID_NEIGHBOURS` nearest others, against the lattice alone (mean |log error|).
    A variant whose misses are not local (fp32 addmm's) keeps the lattice's answer."""
    if len(rs) <= OFFGRID_NEIGHBOURS:
        return False
    d2 = ((xs[:, None, :] - xs[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    near = np.argsort(d2, axis=1, kind="stable")[:, :OFFGRID_NEIGHBOURS]
    loo = np.median(rs[near], axis=1)
    return float(np.abs(rs - loo).mean()) < float(np.abs(rs).mean())


OFFGRID_NEIGHBOURS = 10
"""Off-lattice points whose median correction a query takes. Chosen by 2-fold cross-validation within
``sweep_offgrid_gemm`` (5, 10, 20, 40 neighbours and radius rules: 10 had the lowest mm p90, 16.1%;
docs/validation.md, issue 17), not on a held-out set."""
