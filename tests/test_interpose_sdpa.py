"""SDPA on the simulated GPU picks the backend a real H200 picked, and makes the calls torch makes.

The expected choices are measured: ``tests/data/sdpa_h200_torch211.json`` (real H200,
torch 2.11.0+cu130, cuDNN 9.19; see its ``source``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import roofline_cfg
from torch.nn.attention import SDPBackend

from interpose.sdpa import _additive_mask, choose_backend

MEASURED = json.loads((Path(__file__).parent / "data" / "sdpa_h200_torch211.json").read_text())
FUSED_OP = {
    "CUDNN_ATTENTION": "aten._scaled_dot_product_cudnn_attention.default",
    "EFFICIENT_ATTENTION": "aten._scaled_dot_product_efficient_attention.default",
    "FLASH_ATTENTION": "aten._scaled_dot_product_flash_attention.default",
}
MATH_OPS = {"aten.bmm.default", "aten._safe_softmax.default"}


@pytest.fixture
def cfg():
    """An H200 (conftest's ``rt`` installs the shim with it): the measured tables are H200 ones."""
    return roofline_cfg("h200")


def _ops_during(rt, fn) -> list[tuple[str, str, str]]:
    n0 = len(rt._op_rows)
    fn()
    return [(r[1], r[2], r[3]) for r in rt._op_rows[n0:]]


def _names(ops) -> list[str]:
    return [o[0] for o in ops]


def _attention_ops(names) -> list[str]:
    """The fused forward kernels, or ``MATH`` for each sign of the decomposed path."""
    return [n for n in names if n in FUSED_OP.values()] + ["MATH" for n in names if n in MATH_OPS][:1]


def _measured_mask(kind: str, dtype: torch.dtype):
    if kind == "none":
        return None
    if kind == "bool":
        return torch.ones(2, 1, 128, 128, dtype=torch.bool, device="cuda").tril()
    if kind == "float":
        return torch.zeros(2, 1, 128, 128, dtype=dtype, device="cuda")
    if kind == "bool_expanded":
        return torch.ones(1, 1, 128, 128, dtype=torch.bool, device="cuda").tril().expand(2, -1, -1, -1)
    assert kind == "float_requires_grad"
    return torch.zeros(2, 1, 128, 128, dtype=dtype, device="cuda", requires_grad=True)


def test_measured_h200_choice_table(rt):
    """Every row of the measured grid: the choice (``_fused_sdp_choice``) and the kernel the shim runs."""
    wrong = []
    for c in MEASURED["cases"]:
        dt = getattr(torch, c["dtype"])
        rg = c["qkv_requires_grad"]
        q = torch.randn(2, 4, 128, 64, device="cuda", dtype=dt, requires_grad=rg)
        k = torch.randn(2, c["kv_heads"], 128, 64, device="cuda", dtype=dt, requires_grad=rg)
        v = torch.randn_like(k, requires_grad=rg)
        mask = _measured_mask(c["mask"], dt)
        choice = SDPBackend(torch._fused_sdp_choice(q, k, v, mask, 0.0, c["is_causal"], enable_gqa=c["enable_gqa"]))
        ran = _attention_ops(_names(_ops_during(rt, lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=c["is_causal"], enable_gqa=c["enable_gqa"]))))  # noqa: B023
        expected_ran = [FUSED_OP.get(c["backend"], "MATH")]
        if choice.name != c["backend"] or ran != expected_ran:
            wrong.append((c, choice.name, ran))
    assert not wrong, "\n".join(map(str, wrong))
    # the table exercises every outcome the real GPU gave
    assert {c["backend"] for c in MEASURED["cases"]} == {"CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"}


def test_measured_hf_calls_pick_cudnn_with_gqa_unrepeated(rt):
    """The calls transformers made on the real GPU (strides included) pick cuDNN there and here;
    forward and backward run on the unrepeated GQA k/v."""
    for call in MEASURED["hf_calls"]["calls"]:
        def make(spec, requires_grad=True):
            base = torch.empty(2 * 4 * 128 * 64, device="cuda", dtype=torch.bfloat16)
            return base.as_strided(spec["shape"], spec["stride"]).detach().requires_grad_(requires_grad)

        q, k, v = make(call["q"]), make(call["k"]), make(call["v"])
        m = call["attn_mask"]
        mask = None if m is None else torch.ones(m["shape"], dtype=torch.bool, device="cuda")
        assert mask is None or list(mask.stride()) == m["stride"]
        kw = {"attn_mask": mask, "is_causal": call["is_causal"], "enable_gqa": call["enable_gqa"]}
        assert SDPBackend(choose_backend(q, k, v, mask, 0.0, call["is_causal"], None, call["enable_gqa"])).name \
            == call["backend"]
        ops = _ops_during(rt, lambda: F.scaled_dot_product_attention(q, k, v, **kw).sum().backward())  # noqa: B023
        names = _names(ops)
        assert [n for n in names if "_scaled_dot_product_" in n] == call["ran"], names
        assert not MATH_OPS & set(names)
        fwd = next(o for o in ops if o[0] == call["ran"][0])
        assert fwd[1].split(";")[1] == "x".join(map(str, call["k"]["shape"]))  # k/v as passed, not repeated
        assert k.grad.shape == tuple(call["k"]["shape"])


def test_bool_mask_becomes_additive_after_the_choice(rt):
    """cuDNN: ``where(mask, 0, -65504)``; efficient: ``where(mask, 0, -inf)``, in the query's dtype;
    two ``scalar_tensor`` and one ``where``, no ``logical_not`` (no zeros_like + masked_fill_): the ops
    an H200 ran for HF BERT's padded mask (docs/conformance.md)."""
    q = torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16)
    mask = torch.ones(128, 128, dtype=torch.bool, device="cuda").tril()
    k0 = len(rt.op_keys)
    ops = _ops_during(rt, lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=mask))
    names = _names(ops)
    assert names[-1] == FUSED_OP["CUDNN_ATTENTION"]
    assert names.count("aten.where.self") == 1 and "aten.logical_not.default" not in names
    assert rt.op_keys[k0:][:3] == [  # the keys of the real H200 trace (hf_bert_pad, torch 2.11)
        "aten.scalar_tensor.default||||dtype=torch.bfloat16",
        "aten.scalar_tensor.default||||dtype=torch.bfloat16,layout=torch.strided",
        "aten.where.self|128x128;;|bool,bfloat16,bfloat16|ccc|"]
    assert not {"aten.masked_fill_.Scalar", "aten.zeros_like.default"} & set(names)
    assert ops[-1][1].split(";")[3] == "128x128"
    q32 = q.float()
    names = _names(_ops_during(rt, lambda: F.scaled_dot_product_attention(q32, q32, q32, attn_mask=mask)))
    assert names[-1] == FUSED_OP["EFFICIENT_ATTENTION"] and names.count("aten.where.self") == 1
    for dt, fill in ((torch.bfloat16, -65504.0), (torch.float32, float("-inf"))):
        add = _additive_mask(mask, dt, fill)
        host = add.cpu()  # the mask's values are known (a factory), so the fill can be read back
        expected = torch.tensor(fill, dtype=dt).item()  # -65504 rounds to -65536 in bf16, as on a GPU
        assert add.dtype == dt and host[0, 1].item() == expected and host[1, 0].item() == 0.0


@pytest.mark.parametrize(("seq", "padded"), [(128, False), (100, True)])
def test_efficient_mask_is_8_aligned_and_expanded(rt, seq, padded):
    """``preprocess_mask``: an additive mask whose strides are not 8-aligned is padded (one
    ``constant_pad_nd``) and sliced back; the kernel gets it expanded to (B, Hq, Sq, Sk)."""
    q = torch.randn(2, 4, seq, 64, device="cuda")
    mask = torch.zeros(2, 1, seq, seq, device="cuda")
    ops = _ops_during(rt, lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=mask))
    names = _names(ops)
    assert names[-1] == FUSED_OP["EFFICIENT_ATTENTION"]
    assert ("aten.constant_pad_nd.default" in names) == padded
    assert ops[-1][1].split(";")[3] == f"2x4x{seq}x{seq}"


def test_flash_gqa_causal_square_only_and_odd_head_dims(rt):
    """Flash (cuDNN switched off) takes GQA; ``is_causal`` with Sq != Sk is not flash; a head dim
    that cuDNN refuses (not a multiple of 8) is flash with q/k/v padded, output sliced back."""
    bf = torch.bfloat16
    q = torch.randn(2, 8, 64, 64, device="cuda", dtype=bf, requires_grad=True)
    kv = torch.randn(2, 2, 64, 64, device="cuda", dtype=bf, requires_grad=True)
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        names = _names(_ops_during(rt, lambda: F.scaled_dot_product_attention(
            q, kv, kv, is_causal=True, enable_gqa=True).sum().backward()))
        assert FUSED_OP["FLASH_ATTENTION"] in names and "aten._scaled_dot_product_flash_attention_backward.default" in names
        assert kv.grad.shape == kv.shape
        q_short = q[:, :, :16]
        kv4 = torch.randn(2, 8, 64, 64, device="cuda", dtype=bf)
        names = _names(_ops_during(rt, lambda: F.scaled_dot_product_attention(q_short, kv4, kv4, is_causal=True)))
        assert _attention_ops(names) == [FUSED_OP["EFFICIENT_ATTENTION"]]  # not flash: Sq != Sk
        names = _names(_ops_during(rt, lambda: F.scaled_dot_product_attention(
            q_short, kv, kv, is_causal=True, enable_gqa=True)))
        assert _attention_ops(names) == ["MATH"]  # GQA and not flash: efficient has no GQA
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)
    q36 = torch.randn(2, 4, 64, 36, device="cuda", dtype=bf)
    out = []
    names = _names(_ops_during(rt, lambda: out.append(F.scaled_dot_product_attention(q36, q36, q36, is_causal=True))))
    assert _attention_ops(names) == [FUSED_OP["FLASH_ATTENTION"]]
    assert names.count("aten.constant_pad_nd.default") == 3 and out[0].shape == q36.shape


def test_efficient_head_dim_alignment_is_4_for_fp32_and_8_for_half(rt):
    q = torch.randn(2, 4, 64, 36, device="cuda")
    assert choose_backend(q, q, q) == SDPBackend.EFFICIENT_ATTENTION.value
    h = q.half()
    torch.backends.cuda.enable_flash_sdp(False)
    try:
        assert choose_backend(h, h, h) == SDPBackend.MATH.value  # 36 % 8 != 0 and cuDNN needs % 8 too
    finally:
        torch.backends.cuda.enable_flash_sdp(True)


def test_cudnn_refuses_masks_of_other_ranks_and_non_unit_last_stride(rt):
    bf = torch.bfloat16
    q = torch.randn(2, 4, 64, 64, device="cuda", dtype=bf)
    m3 = torch.zeros(2, 64, 64, device="cuda", dtype=bf)  # 3-D: not check_attn_mask_shape's 2-D / 4-D
    assert choose_backend(q, q, q, m3) == SDPBackend.EFFICIENT_ATTENTION.value
    mt = torch.zeros(64, 64, device="cuda", dtype=bf).t()  # stride(-1) != 1: no fused kernel
    assert choose_backend(q, q, q, mt) == SDPBackend.MATH.value
    qt = torch.randn(2, 4, 64, 64, device="cuda", dtype=bf).transpose(-1, -2)
    assert choose_backend(qt, qt, qt) == SDPBackend.MATH.value
    assert choose_backend(q, q, q, None, 0.1) == SDPBackend.CUDNN_ATTENTION.value  # GPT-2's dropout, as recorded
    assert choose_backend(q, q, q, None, 0.125) == SDPBackend.CUDNN_ATTENTION.value


def test_gqa_head_counts_must_divide(rt):
    bf = torch.bfloat16
    q = torch.randn(2, 6, 64, 64, device="cuda", dtype=bf)
    k4 = torch.randn(2, 4, 64, 64, device="cuda", dtype=bf)
    k2 = torch.randn(2, 2, 64, 64, device="cuda", dtype=bf)
    assert choose_backend(q, k4, k4, enable_gqa=True) == SDPBackend.MATH.value  # 6 % 4
    assert choose_backend(q, k2, k4, enable_gqa=True) == SDPBackend.MATH.value  # Hk != Hv
    assert choose_backend(q, k2, k2, enable_gqa=True) == SDPBackend.CUDNN_ATTENTION.value
    assert choose_backend(q, k2, k2) == SDPBackend.MATH.value  # GQA shapes without enable_gqa
