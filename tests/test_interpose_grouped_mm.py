"""aten._grouped_mm on the simulated GPU: the CUDA build's dtypes, output layout and fallback sync."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

aten = torch.ops.aten


def _rows(rt, fn):
    n0, s0 = len(rt._op_rows), rt.syncs
    out = fn()
    return out, [r[1] for r in rt._op_rows[n0:]], rt.syncs - s0


def _experts(dtype, n=18, requires_grad=False):
    """Tokens sorted by expert, and (E, in, out) weights stored (E, out, in) as nn.Linear-style
    experts are (transposed: 16-byte aligned however odd ``n`` is)."""
    a = torch.randn(10, 32, device="cuda", dtype=dtype, requires_grad=requires_grad)
    w = torch.randn(3, n, 32, device="cuda", dtype=dtype, requires_grad=requires_grad).transpose(-2, -1)
    offs = torch.tensor([3, 7, 10], dtype=torch.int32, device="cuda")
    return a, w, offs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_non_bf16_runs_the_cuda_fallback(rt, dtype):
    """fp32/fp16 (the meta kernel accepts bf16 only): output in the input dtype, last-dim stride
    padded to 16 bytes, and the fallback's ``offs.cpu()``: one blocking D2H copy before the op."""
    a, w, offs = _experts(dtype)
    out, ops, syncs = _rows(rt, lambda: torch._grouped_mm(a, w, offs=offs))
    assert out.shape == (10, 18) and out.dtype == dtype
    assert out.stride() == (20 if dtype == torch.float32 else 24, 1)
    assert ops == ["aten._to_copy.default(d2h)", "aten._grouped_mm.default"] and syncs == 1


def test_bf16_is_the_grouped_kernel_without_a_sync(rt):
    a, w, offs = _experts(torch.bfloat16)
    out, ops, syncs = _rows(rt, lambda: torch._grouped_mm(a, w, offs=offs))
    assert out.shape == (10, 18) and out.dtype == torch.bfloat16 and out.stride() == (24, 1)
    assert ops == ["aten._grouped_mm.default"] and syncs == 0
    b3 = torch.randn(3, 8, 32, device="cuda", dtype=torch.bfloat16)
    out3 = torch._grouped_mm(b3, w)  # 3-D x 3-D: a batched matmul, no offsets
    assert out3.shape == (3, 8, 18) and out3.stride() == (8 * 24, 24, 1)


def test_fp32_backward_runs_grouped_mm_for_the_grads(rt):
    a, w, offs = _experts(torch.float32, n=16, requires_grad=True)
    out = torch._grouped_mm(a, w, offs=offs)
    _, ops, _ = _rows(rt, lambda: out.backward(torch.ones_like(out)))
    assert a.grad.shape == a.shape and w._base.grad.shape == (3, 16, 32)
    assert ops.count("aten._grouped_mm.default") == 2  # grad of a, grad of w
    with pytest.raises(RuntimeError, match="Invalid strides"):  # an expanded grad: CUDA refuses it too
        torch._grouped_mm(a, w, offs=offs).sum().backward()


def test_invalid_inputs_raise_like_cuda(rt):
    a, w, offs = _experts(torch.float32)
    with pytest.raises(RuntimeError, match="output dtype must match"):
        torch._grouped_mm(a, w, offs=offs, out_dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="Have to provide offsets"):
        torch._grouped_mm(a, w)
    with pytest.raises(RuntimeError, match="Float32, BFloat16 or Float16"):
        torch._grouped_mm(a.double(), w.double(), offs=offs)


def test_grouped_mm_counts_its_flops_as_a_matmul():
    from profiles.cost import family_of, op_flops

    a = torch.empty(512, 128, dtype=torch.bfloat16, device="meta")
    w = torch.empty(8, 128, 256, dtype=torch.bfloat16, device="meta")
    out = torch.empty(512, 256, dtype=torch.bfloat16, device="meta")
    assert family_of("aten._grouped_mm.default") == "matmul"
    assert op_flops(torch.ops.aten._grouped_mm.default, (a, w), {}, out) == 2 * 512 * 128 * 256
    g = torch.empty(256, 512, dtype=torch.bfloat16, device="meta")  # 2-D x 2-D: groups split K
    assert op_flops(torch.ops.aten._grouped_mm.default, (g, a), {}, torch.empty(8, 256, 128, device="meta")) == (
        2 * 256 * 512 * 128
    )


def test_profiles_recorded_before_the_formula_are_refreshed_on_read():
    from profiles.store import read_profile

    _, entries = read_profile(REPO / "profiles" / "data" / "h200" / "moe_large.jsonl.gz")  # recorded with flops 0
    e = entries["aten._grouped_mm.default|2048x32768;32768x4096;8|bfloat16,bfloat16,int32|ncc|"]
    assert e.family == "matmul" and e.flops == 2 * 2048 * 32768 * 4096
