"""T5's learned position bias takes SDPA's math path, as on a real H200.

transformers 5.17's T5 passes ``position_bias`` as the additive mask: an embedding output (S, S, H)
permuted to (1, H, S, S), so its last dim has stride H, requiring grad, with attention dropout 0.1,
under bf16 autocast. The H200 (torch 2.11, the zoo's hf_t5 trace in docs/data/conformance/zoo_h200.tar.gz)
ran the math path on it: q/k/v cast to fp32, fp32 ``bmm``, the bf16 bias added, ``_safe_softmax``,
``native_dropout`` -- every fused kernel needs the mask's last-dim stride to be 1.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import roofline_cfg

B, H, S, D = 2, 4, 64, 64


@pytest.fixture
def cfg():
    """An H200 (conftest's ``rt`` installs the shim with it): the measured tables are H200 ones."""
    return roofline_cfg("h200")


def _t5_call(rt, contiguous: bool, dropout_p: float = 0.1) -> list[str]:
    bias_weight = torch.zeros(S, S, H, device="cuda", requires_grad=True)  # embedding(relative buckets)
    bias = bias_weight.permute(2, 0, 1).unsqueeze(0)
    if contiguous:
        bias = bias.contiguous()
    q, k, v = (torch.randn(B, H, S, D, device="cuda", requires_grad=True) for _ in range(3))
    k0 = len(rt.op_keys)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1.0)
    assert out.shape == (B, H, S, D)
    return rt.op_keys[k0:]


def test_permuted_grad_bias_with_dropout_takes_the_math_path(rt):
    keys = _t5_call(rt, contiguous=False)
    names = [k.split("|")[0] for k in keys]
    assert not [n for n in names if "scaled_dot_product" in n]
    assert "aten._safe_softmax.default" in names and "aten.native_dropout.default" in names
    # the real trace's math path: fp32 bmm on upcast q/k/v, the bf16 bias (not contiguous) added in
    assert f"aten.bmm.default|{B * H}x{S}x{D};{B * H}x{D}x{S}|float32,float32|cc|" in keys
    assert f"aten.add.Tensor|{B}x{H}x{S}x{S};1x{H}x{S}x{S}|float32,bfloat16|cn|" in keys
    assert f"aten._to_copy.default|1x{H}x{S}x{S}|float32|n|dtype=torch.bfloat16" in keys


def test_the_stride_is_what_decides(rt):
    """The same bias made contiguous is not refused: memory-efficient attention runs, as the H200 chose
    for a contiguous grad-requiring float mask (tests/data/sdpa_h200_torch211.json, no dropout; with
    dropout the choice is not measured, so not pinned here)."""
    assert "aten._safe_softmax.default" in [k.split("|")[0] for k in _t5_call(rt, False, 0.0)]
    names = [k.split("|")[0] for k in _t5_call(rt, contiguous=True, dropout_p=0.0)]
    assert "aten._safe_softmax.default" not in names
    assert "aten._scaled_dot_product_efficient_attention.default" in names
