"""Grouped GEMM family: ``aten._grouped_mm`` (MoE experts), from its own sweep where one is recorded.

PyTorch runs bf16 ``_grouped_mm`` on sm90 as one persistent CUTLASS grouped kernel whose tile scheduler
spreads the tiles of every group over the SMs together. Two answers, the first that applies:

* **grouped grids**, fitted on ``sweep_grid_grouped`` (``benchmarks/real/kernel_sweep_specs_dense.py
  grouped``: equal groups, bf16): per form, a log grid over (groups G, tokens per group T/G, K, N) with
  work T·K·N. Forms: ``xw`` / ``xwt`` (2-D × 3-D, ``x (T, K) @ w[e] (K, N)``, ``w`` contiguous or
  transposed: the expert forward and its input gradient) and ``wgrad`` (2-D × 2-D, ``xᵀ (K, T) @ grad
  (T, N)`` split over T: the weight gradient). The groups are taken as equal, which is what the
  ``balanced`` value policy routes; the routing in ``offs`` is not part of the signature;
* otherwise the **dense GEMM of the concatenated groups** from the mm grids of :mod:`.gemm`
  (``mm(T × K, K × N)`` with the layout of ``w``; ``mm(K × T, T × N)`` for the weight gradient): small
  grouped GEMMs (hidden 512) take 1.4-2x the dense GEMM's time there, which no dense grid shows.

Held-out error of both on ``sweep_heldout_grouped`` and on the MoE runs' recorded entries:
``benchmarks/kernel_family_accuracy.py`` (docs/validation.md, issue 17). 3-D × 2-D / 3-D × 3-D forms and
non-bf16 inputs (the fallback loop) fall through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, half_to_bf16
from profiles.families.gemm import GemmModel
from profiles.store import ProfileEntry

_GROUPED = "aten._grouped_mm.default"
_MM = "aten.mm.default"


def as_mm(q: Query) -> Query | None:
    """The dense GEMM of a grouped GEMM query's concatenated groups, or ``None`` for forms not modelled."""
    if len(q.shapes) < 3 or len(q.contiguous) < 2 or len(q.shapes[2]) != 1 or not q.dtypes:
        return None
    a, b = q.shapes[0], q.shapes[1]
    if half_to_bf16(q.dtypes[0]) != "bfloat16" or len(a) != 2:
        return None
    if len(b) == 3 and b[0] == q.shapes[2][0]:  # x (T, K) @ w (G, K, N)
        shapes: tuple[tuple[int, ...], ...] = (a, (b[1], b[2]))
    elif len(b) == 2:  # x^T (M, T) @ grad (T, N), groups over T
        shapes = (a, b)
    else:
        return None
    return Query(
        _MM, shapes, ("bfloat16", "bfloat16"), (q.contiguous[0], q.contiguous[1]), {}, q.flops, q.bytes, 3
    )


def grouped_point(q: Query) -> tuple[str, list[float]] | None:
    """Form and grid point ``[G, T/G, K, N]`` of a bf16 grouped GEMM query, or ``None`` for other forms."""
    if len(q.shapes) < 3 or len(q.contiguous) < 2 or len(q.shapes[2]) != 1 or not q.dtypes:
        return None
    a, b, g = q.shapes[0], q.shapes[1], q.shapes[2][0]
    if half_to_bf16(q.dtypes[0]) != "bfloat16" or len(a) != 2 or g < 1:
        return None
    if len(b) == 3 and b[0] == g:  # x (T, K) @ w (G, K, N)
        t, k, n = a[0], a[1], b[2]
        form = "xw" if q.contiguous[1] else "xwt"
    elif len(b) == 2:  # x^T (K, T) @ grad (T, N)
        k, t, n = a[0], a[1], b[1]
        form = "wgrad"
    else:
        return None
    return form, [float(g), max(t / g, 1.0), float(k), float(n)]


@FAMILY_MODELS.register("grouped_mm")
class GroupedMmModel(FamilyModel):
    """``_grouped_mm`` from its own grouped grids (per form), else as the dense GEMM of its concatenated groups."""

    name = "grouped_mm"
    ops = frozenset({_GROUPED})

    def __init__(self) -> None:
        super().__init__()
        self._gemm = GemmModel()
        self._gemm_shared = False

    def fit(self, entries: Iterable[ProfileEntry]) -> None:
        rows = list(entries)
        super().fit(rows)  # the grouped grids, by ``("grouped", form)`` (:meth:`features`)
        if not self._gemm_shared:
            self._gemm.fit(e for e in rows if e.op == _MM)
        self.grids = {**self._gemm.grids, **self.grids}

    def share(self, fitted: dict[str, FamilyModel]) -> bool:
        """Takes the fitted GEMM model for the dense fallback (its ``mm`` grids are this fit's: same entries)
        but still fits: the grouped grids are this model's own, so it answers ``False``."""
        gemm = fitted.get(GemmModel.name)
        if isinstance(gemm, GemmModel):
            self._gemm, self._gemm_shared = gemm, True
        return False

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        p = grouped_point(q)
        return None if p is None else (("grouped", p[0]), p[1], self.ref_of(("grouped", p[0]), p[1]))

    def ref_of(self, variant: tuple, x: Sequence[float]) -> float:
        g, tpg, k, n = x
        return g * tpg * k * n

    def predict(self, q: Query) -> float | None:
        """The form's grouped grid; a form nobody swept: the dense GEMM of the concatenated groups."""
        dur = super().predict(q)
        if dur is not None or q.op not in self.ops:
            return dur
        b = as_mm(q)
        return None if b is None else self._gemm.predict(b)
