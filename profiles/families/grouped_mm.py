"""Grouped GEMM family: ``aten._grouped_mm`` (MoE experts) as the one GEMM of its concatenated groups.

PyTorch runs bf16 ``_grouped_mm`` on sm90 as one persistent CUTLASS grouped kernel whose tile scheduler
spreads the tiles of every group over the SMs together, so its work is that of one GEMM of the
concatenated problem; it is answered from the mm grids of :mod:`.gemm` (no fitted constant of its own;
no grouped sweep exists yet: ``benchmarks/real/kernel_sweep_specs.py`` has its spec):

* 2-D × 3-D (``x @ w[e]``: the expert forward and its input gradient): ``mm(T × K, K × N)`` with the
  layout of ``w``;
* 2-D × 2-D (``xᵀ @ grad``: the weight gradient, groups split the contraction): ``mm(M × T, T × N)``.

``offs`` (the routing) is not seen. Checked against the 12 ``_grouped_mm`` entries recorded from
``examples/moe/train.py`` on H200 (``profiles/data/h200/moe_*.jsonl.gz``, none fitted on):
docs/validation.md, issue 17. Small grouped GEMMs (hidden 512) take 1.4-2x the dense GEMM's time, which
no dense grid shows. 3-D × 2-D / 3-D × 3-D forms and non-bf16 inputs (the fallback loop) fall through.
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


@FAMILY_MODELS.register("grouped_mm")
class GroupedMmModel(FamilyModel):
    """``_grouped_mm`` as the dense GEMM of its concatenated groups (the bf16 mm grids of :class:`GemmModel`)."""

    name = "grouped_mm"
    ops = frozenset({_GROUPED})

    def __init__(self) -> None:
        super().__init__()
        self._gemm = GemmModel()

    def fit(self, entries: Iterable[ProfileEntry]) -> None:
        self._gemm.fit(e for e in entries if e.op == _MM)
        self.grids = self._gemm.grids

    def share(self, fitted: dict[str, FamilyModel]) -> bool:
        """The fitted GEMM model's grids: its ``mm`` grids are this fit's (same entries), and the others are
        never reached (:meth:`variants_for` of an ``mm`` variant stays on ``mm``)."""
        gemm = fitted.get(GemmModel.name)
        if not isinstance(gemm, GemmModel):
            return False
        self._gemm, self.grids = gemm, gemm.grids
        return True

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        b = as_mm(q)
        return None if b is None else self._gemm.features(b)

    def variants_for(self, variant: tuple) -> Iterable[tuple]:
        return self._gemm.variants_for(variant)

    def ref_of(self, variant: tuple, x: Sequence[float]) -> float:
        return self._gemm.ref_of(variant, x)
