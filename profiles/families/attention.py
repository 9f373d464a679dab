"""Fused attention family: cuDNN SDPA forward/backward (and their flash twins) by batch·heads, length, head dim.

Fitted on ``sweep_grid_attention`` (bf16, q/k/v laid out ``(B, S, H, D)ᵀ`` as
models make them): training shapes q_len = kv_len = S in 128..8192 (2×),
B·H in 4..256 (4×), head dim 64 and 128, causal and not, forward and backward,
capped at B·H·S² ≤ 2³²; decode shapes (q_len 1) with kv_len 128..32768 and B·H
8..512, forward only. Variants are (direction, causal) for training shapes and
decode for q_len 1; axes are log(B·H), log(S) (√(q_len·kv_len) when they
differ) and log(head dim); the work proxy is B·H·S²·D (B·H·kv_len·D in
decode). The flash-attention ops the shim may pick are answered as the cuDNN
kernel PyTorch 2.11 runs on H200 for bf16/fp16 (``profiles.replay.equivalent_keys``).
fp32 attention (memory-efficient kernel) has no grid: it falls through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, half_to_bf16

_FWD = {
    "aten._scaled_dot_product_cudnn_attention.default",
    "aten._scaled_dot_product_flash_attention.default",
}
_BWD = {
    "aten._scaled_dot_product_cudnn_attention_backward.default",
    "aten._scaled_dot_product_flash_attention_backward.default",
}


@FAMILY_MODELS.register("attention")
class AttentionModel(FamilyModel):
    """Log-grid interpolation of cuDNN fused attention time (bf16/fp16)."""

    name = "attention"
    ops = frozenset(_FWD | _BWD)

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        bwd = q.op in _BWD
        i = 1 if bwd else 0  # backward: grad_out first, then q, k, v
        if len(q.shapes) < i + 2 or len(q.shapes[i]) != 4 or len(q.shapes[i + 1]) != 4:
            return None
        if half_to_bf16(q.dtypes[i]) != "bfloat16":
            return None
        b, h, sq, d = q.shapes[i]
        skv = q.shapes[i + 1][2]
        causal = q.flags.get("is_causal") == "True"
        if sq == 1 and not bwd:
            x: list[float] = [b * h, skv, d]
            return ("decode",), x, self.ref_of(("decode",), x)
        x = [b * h, math.sqrt(sq * skv), d]
        v = ("bwd" if bwd else "fwd", causal)
        return v, x, self.ref_of(v, x)

    def ref_of(self, variant: tuple, x: Sequence[float]) -> float:
        if variant == ("decode",):
            return float(x[0] * x[1] * x[2])
        return float(x[0] * x[1] * x[1] * x[2])
