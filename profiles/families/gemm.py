"""GEMM family: mm / addmm over (M, N, K) and bmm over (B, M, N, K), per compute dtype and layout.

Fitted on ``sweep_grid_gemm``: M, N, K on powers of two 16..16384, layouts
``cc``/``cn``/``nc`` (a, b contiguous or transposed), bf16, fp32 and TF32
(fp32 keyed ``tf32=True``); addmm (bias, layout ``cn``) in bf16 and fp32; bmm
(bf16, ``cc``/``cn``) with B in 1..64 and M, N, K in 16..4096 by 4×.
The work proxy is M·N·K, so between nodes log time is interpolated, and past
16384 time grows with work at the edge's efficiency.

fp32 without TF32 runs cuBLAS's SIMT kernels: a grid of 128×128 output tiles, one per
CTA, in waves over the SMs. Once there is more than one wave of tiles, the last wave
runs part-empty, which the power-of-two lattice never shows (its multi-wave nodes all
fill 97% of their last wave on 132 SMs). Their work proxy is the M·N·K of the
SM-slots the waves occupy (:func:`wave_work`). Below one wave cuBLAS splits K or
shrinks tiles (the lattice's fp32 time still grows with work there), so nothing is
added; bf16/TF32 tensor-core kernels show no wave loss on the held-out set and keep
M·N·K (docs/validation.md, issue 17).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, half_to_bf16

_MM, _ADDMM, _BMM = "aten.mm.default", "aten.addmm.default", "aten.bmm.default"
_LAYOUTS = ("cn", "cc", "nc")


SIMT_TILE = 128
"""Output tile edge of cuBLAS's fp32 SIMT GEMM kernels (128×128 per CTA)."""


def wave_work(b: float, m: float, n: float, k: float, sms: int) -> float:
    """M·N·K of a SIMT GEMM scaled by its wave quantisation: tiles rounded up to whole waves over ``sms`` SMs
    (one wave or less: plain M·N·K)."""
    tiles = b * math.ceil(m / SIMT_TILE) * math.ceil(n / SIMT_TILE)
    work = b * m * n * k
    if tiles <= sms:
        return work
    return work * math.ceil(tiles / sms) * sms / tiles


ALIGNED = 128
"""A GEMM dimension that is a multiple of this (or a power of two) divides into cuBLAS's tiles as the
lattice's nodes do."""


OFFGRID_STEP = 16
"""The off-lattice points' dimensions are multiples of this: the correction covers that class only."""


def _aligned(d: int) -> bool:
    return d % ALIGNED == 0 or (d > 0 and d & (d - 1) == 0)


def _layout(cont: tuple[bool, ...]) -> str:
    return "".join("c" if c else "n" for c in cont)


@FAMILY_MODELS.register("gemm")
class GemmModel(FamilyModel):
    """Log-grid interpolation of cuBLAS GEMM time; shares grids across layouts and ops where one is missing."""

    name = "gemm"
    ops = frozenset({_MM, _ADDMM, _BMM})
    sms = 132
    """SMs the fp32 waves fill (H200's 132; the sweeps exist for H200 only)."""

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        if not q.dtypes:
            return None
        cdtype = "tf32" if q.flags.get("tf32") == "True" else half_to_bf16(q.dtypes[0])
        if q.op == _BMM:
            if len(q.shapes) != 2 or len(q.shapes[0]) != 3 or len(q.shapes[1]) != 3:
                return None
            (b, m, k), (_, _, n) = q.shapes
            v = ("bmm", cdtype, _layout(q.contiguous[:2]))
            x: list[float] = [b, m, n, k]
            return v, x, self.ref_of(v, x)
        mats = q.shapes[1:3] if q.op == _ADDMM else q.shapes[:2]
        cont = q.contiguous[1:3] if q.op == _ADDMM else q.contiguous[:2]
        if len(mats) != 2 or len(mats[0]) != 2 or len(mats[1]) != 2:
            return None
        (m, k), (_, n) = mats
        v = ("addmm" if q.op == _ADDMM else "mm", cdtype, _layout(cont))
        x = [m, n, k]
        return v, x, self.ref_of(v, x)

    def ref_of(self, variant: tuple, x: Sequence[float]) -> float:
        b, m, n, k = x if variant[0] == "bmm" else (1.0, *x)
        if variant[1] == "float32":
            return wave_work(b, m, n, k, self.sms)
        return float(b * m * n * k)

    def between_nodes(self, variant: tuple, x: Sequence[float]) -> bool:
        """Shapes whose M, N, K are each a power of two or a multiple of :data:`ALIGNED` run the lattice's
        kernels (its nodes are such shapes): no off-lattice correction. The correction's points are random
        multiples of 16 (``sweep_offgrid_gemm``), mostly misaligned to cuBLAS's tiles; applied to the aligned
        widths real programs use, it made their recorded GEMMs' error worse, and so it did for dimensions that
        are not multiples of 16 (MoE token counts), a class it has no points of (docs/validation.md, issue 17)."""
        dims = [int(d) for d in (x[1:] if variant[0] == "bmm" else x)]
        return all(d % OFFGRID_STEP == 0 for d in dims) and not all(_aligned(d) for d in dims)

    def variants_for(self, variant: tuple) -> list[tuple]:
        kind, cdtype, layout = variant
        kinds = [kind] if kind == "bmm" else [kind, "mm"]  # addmm without its own grid: the mm grid
        layouts = [layout, *(x for x in _LAYOUTS if x != layout)]
        return [(k, cdtype, lay) for k in kinds for lay in layouts]
