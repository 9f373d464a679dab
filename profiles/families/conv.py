"""Convolution family: cuDNN ``convolution`` forward and ``convolution_backward`` as implicit GEMMs.

Fitted on ``sweep_grid_conv``: groups 1, dilation 1, square kernels R ∈ {1, 3}
(padding R//2) and stride ∈ {1, 2}; (batch, H=W) pairs (1, 7), (1, 28),
(4, 56), (16, 56), (32, 112); C and K in 16..1024 (4×); bf16 channels_last,
bf16 NCHW and fp32 NCHW (cuDNN's default TF32 for convolutions on); backward
with ``output_mask=[True, True, False]``. A conv is the GEMM
(N·Ho·Wo) × K × (C·R·S): variants are (direction, compute dtype,
channels_last, R, stride), axes log(output pixels), log(C), log(K), work proxy
pixels·C·K. Other kernel sizes, strides, groups (depthwise), dilations and
transposed convolutions have no grid and fall through; fp32 channels_last uses
the fp32 NCHW grid; a backward with a bias gradient uses the one without.
"""

from __future__ import annotations

from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, half_to_bf16

_FWD, _BWD = "aten.convolution.default", "aten.convolution_backward.default"


def _ints(text: str | None) -> list[int]:
    return [int(v) for v in text.strip("[]").split(",") if v.strip()] if text else []


@FAMILY_MODELS.register("conv")
class ConvModel(FamilyModel):
    """Log-grid interpolation of cuDNN convolution time over the implicit-GEMM sizes."""

    name = "conv"
    ops = frozenset({_FWD, _BWD})

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        bwd = q.op == _BWD
        i = 1 if bwd else 0  # backward: grad_output, input, weight
        if len(q.shapes) < i + 2 or len(q.shapes[i]) != 4 or len(q.shapes[i + 1]) != 4:
            return None
        f = q.flags
        stride, pad, dil = _ints(f.get("stride")), _ints(f.get("padding")), _ints(f.get("dilation"))
        if f.get("transposed") != "False" or f.get("groups") != "1" or any(v != 1 for v in dil):
            return None
        mask = f.get("output_mask", "").replace("True", "1").replace("False", "0")
        if bwd and _ints(mask)[:2] != [1, 1]:
            return None
        n, c, h, w = q.shapes[i]
        k, _, r, s = q.shapes[i + 1]
        if r != s or r not in (1, 3) or len(set(stride)) != 1 or stride[0] not in (1, 2) or len(pad) != 2:
            return None
        ho = (h + 2 * pad[0] - r) // stride[0] + 1
        wo = (w + 2 * pad[1] - s) // stride[0] + 1
        if ho <= 0 or wo <= 0:
            return None
        cl = not q.contiguous[i]
        x: list[float] = [n * ho * wo, c, k]
        variant = ("bwd" if bwd else "fwd", half_to_bf16(q.dtypes[i]), cl, r, stride[0])
        return variant, x, float(x[0] * c * k)

    def variants_for(self, variant: tuple) -> list[tuple]:
        d, dtype, cl, r, s = variant
        return [variant, (d, dtype, not cl, r, s)]
