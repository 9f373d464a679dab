"""GEMM family: mm / addmm over (M, N, K) and bmm over (B, M, N, K), per compute dtype and layout.

Fitted on ``sweep_grid_gemm``: M, N, K on powers of two 16..16384, layouts
``cc``/``cn``/``nc`` (a, b contiguous or transposed), bf16, fp32 and TF32
(fp32 keyed ``tf32=True``); addmm (bias, layout ``cn``) in bf16 and fp32; bmm
(bf16, ``cc``/``cn``) with B in 1..64 and M, N, K in 16..4096 by 4×.
The work proxy is M·N·K, so between nodes log time is interpolated, and past
16384 time grows with work at the edge's efficiency.
"""

from __future__ import annotations

from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, half_to_bf16

_MM, _ADDMM, _BMM = "aten.mm.default", "aten.addmm.default", "aten.bmm.default"
_LAYOUTS = ("cn", "cc", "nc")


def _layout(cont: tuple[bool, ...]) -> str:
    return "".join("c" if c else "n" for c in cont)


@FAMILY_MODELS.register("gemm")
class GemmModel(FamilyModel):
    """Log-grid interpolation of cuBLAS GEMM time; shares grids across layouts and ops where one is missing."""

    name = "gemm"
    ops = frozenset({_MM, _ADDMM, _BMM})

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        if not q.dtypes:
            return None
        cdtype = "tf32" if q.flags.get("tf32") == "True" else half_to_bf16(q.dtypes[0])
        if q.op == _BMM:
            if len(q.shapes) != 2 or len(q.shapes[0]) != 3 or len(q.shapes[1]) != 3:
                return None
            (b, m, k), (_, _, n) = q.shapes
            return ("bmm", cdtype, _layout(q.contiguous[:2])), [b, m, n, k], float(b * m * n * k)
        mats = q.shapes[1:3] if q.op == _ADDMM else q.shapes[:2]
        cont = q.contiguous[1:3] if q.op == _ADDMM else q.contiguous[:2]
        if len(mats) != 2 or len(mats[0]) != 2 or len(mats[1]) != 2:
            return None
        (m, k), (_, n) = mats
        kind = "addmm" if q.op == _ADDMM else "mm"
        return (kind, cdtype, _layout(cont)), [m, n, k], float(m * n * k)

    def variants_for(self, variant: tuple) -> list[tuple]:
        kind, cdtype, layout = variant
        kinds = [kind] if kind == "bmm" else [kind, "mm"]  # addmm without its own grid: the mm grid
        layouts = [layout, *(x for x in _LAYOUTS if x != layout)]
        return [(k, cdtype, lay) for k in kinds for lay in layouts]
