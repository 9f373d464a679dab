"""Parameters keep their identity across ``.cuda()``/``.to()`` like on a GPU build of PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensor


def _ops(rt) -> list[str]:
    return [o.op for o in rt.result().ops]


@pytest.mark.parametrize("move", ["cuda", "to_str", "to_device", "to_device_dtype"])
def test_optimizer_built_before_cuda_steps_cuda_params(rt, move):
    m = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64))
    before = list(m.parameters())
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    if move == "cuda":
        m.cuda()
    elif move == "to_str":
        m.to("cuda")
    elif move == "to_device":
        m.to(torch.device("cuda", 0))
    else:
        m.to("cuda", torch.bfloat16)
    after = list(m.parameters())
    assert all(p is q for p, q in zip(before, after, strict=True))
    assert all(isinstance(p, FakeTensor) and isinstance(p, nn.Parameter) and p.is_cuda for p in after)
    assert all(p.requires_grad and p.is_leaf for p in after)
    m(torch.randn(8, 64, device="cuda", dtype=after[0].dtype)).float().sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in before)
    n0 = len(_ops(rt))
    opt.step()
    step_ops = _ops(rt)[n0:]
    assert any(op.startswith("aten._foreach_") or op.startswith("aten._fused_adam") for op in step_ops)
    assert len(opt.state) == 4 and all(s["exp_avg"].is_cuda for s in opt.state.values())
    assert rt.iterations and len(rt.iterations) == 1


def test_dtype_conversion_after_cuda_keeps_identity(rt):
    m = nn.Linear(16, 16).cuda()
    w = m.weight
    m.half()
    assert m.weight is w and w.dtype == torch.float16 and w.is_cuda
    m.to(torch.bfloat16)
    assert m.weight is w and w.dtype == torch.bfloat16


def test_grad_moves_with_param(rt):
    m = nn.Linear(8, 8)
    m(torch.randn(2, 8)).sum().backward()  # real CPU grads
    g = m.weight.grad
    m.cuda()
    assert m.weight.grad is g and g.is_cuda and g.shape == (8, 8)


def test_buffers_and_cpu_roundtrip(rt):
    bn = nn.BatchNorm1d(8).cuda()
    assert bn.running_mean.is_cuda
    w = nn.Linear(4, 4)
    w.float()  # plain CPU conversion still works (no swap needed)
    assert not w.weight.is_cuda


def test_overwrite_flag_gives_new_parameters(rt):
    m = nn.Linear(8, 8)
    w = m.weight
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        m.cuda()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)
    assert m.weight is not w and m.weight.is_cuda and not w.is_cuda


def test_parameter_memory_charged_once(rt):
    m = nn.Linear(1024, 1024, bias=False)  # 4 MiB of fp32 weights
    m.cuda()
    assert rt.allocator.allocated_bytes == 4 << 20
