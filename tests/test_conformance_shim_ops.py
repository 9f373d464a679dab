"""Ops whose fake-tensor path differs from the CUDA kernel, found by ``phantora conformance`` on the zoo
(docs/conformance.md): the shim issues what an H200 issued."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import roofline_cfg

aten = torch.ops.aten


@pytest.fixture
def cfg():
    """An H200 (conftest's ``rt`` installs the shim with it): the measured tables are H200 ones."""
    return roofline_cfg("h200")


def test_one_hot_is_zeros_and_scatter(rt):
    """HF Mixtral's router (H200 trace, torch 2.11): ``zeros`` + ``scatter_``; the fake path would be
    ``arange`` + ``eq`` + a cast."""
    idx = torch.zeros(64, 2, dtype=torch.int64, device="cuda")
    k0 = len(rt.op_keys)
    out = F.one_hot(idx, num_classes=8)
    assert out.shape == (64, 2, 8) and out.dtype == torch.int64 and out.is_cuda
    assert rt.op_keys[k0:] == [
        "aten.zeros.default||||size=[64, 2, 8],dtype=torch.int64,layout=torch.strided",
        "aten.scatter_.value|64x2x8;64x2x1|int64,int64|cc|dim=-1,value=1",
    ]
    cpu = F.one_hot(torch.tensor([0, 2]), num_classes=3)  # host tensors keep torch's own path
    assert cpu.tolist() == [[1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize(("x_cl", "g_cl"), [(True, False), (False, True), (True, True), (False, False)])
def test_batch_norm_backward_grad_input_follows_the_input(rt, x_cl, g_cl):
    """The CUDA kernel allocates grad_input in the input's memory format (timm EfficientNet-B0 on an
    H200: a channels_last input with a contiguous grad gave a channels_last grad_input)."""
    cl = torch.channels_last
    x = torch.randn(4, 8, 5, 5, device="cuda", dtype=torch.bfloat16)
    g = torch.randn_like(x)
    x = x.contiguous(memory_format=cl) if x_cl else x
    g = g.contiguous(memory_format=cl) if g_cl else g
    w, b = (torch.randn(8, device="cuda") for _ in range(2))
    _, mean, invstd = aten.native_batch_norm.default(x, w, b, None, None, True, 0.1, 1e-5)
    gi, gw, gb = aten.native_batch_norm_backward.default(g, x, w, None, None, mean, invstd, True, 1e-5,
                                                          [True, True, True])
    assert gi.is_contiguous(memory_format=cl if x_cl else torch.contiguous_format)
    assert gw.shape == gb.shape == (8,)
