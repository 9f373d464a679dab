"""Signature keys: stable for equivalent calls, blind to float hyper-parameters, hashed for long lists."""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles.compute import LONG_LIST_TENSORS, signature_of

aten = torch.ops.aten


def test_same_key_for_equivalent_calls_and_fake_vs_real_meta():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    k1 = signature_of(aten.mm.default, (a, b), {}).key()
    k2 = signature_of(aten.mm.default, (torch.zeros(8, 16), torch.ones(16, 4)), {}).key()
    assert k1 == k2
    assert "8x16;16x4" in k1


def test_fake_cuda_tensor_keys_without_device_suffix():
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(8, 16, device="cuda", dtype=torch.bfloat16)
        key = signature_of(aten.mm.default, (a, a.t()), {}).key()
    assert key == "aten.mm.default|8x16;16x8|bfloat16,bfloat16|cn|"


def test_cpu_tensors_are_marked_so_h2d_copies_differ():
    x = torch.randn(4)
    assert "float32@cpu" in signature_of(aten.clone.default, (x,), {}).key()


def test_float_hyperparameters_are_not_in_the_key_but_int_flags_are():
    x = torch.randn(4, 4)
    k1 = signature_of(aten.add.Tensor, (x, x), {"alpha": 0.5}).key()
    k2 = signature_of(aten.add.Tensor, (x, x), {"alpha": 2.0}).key()
    assert k1 == k2
    s0 = signature_of(aten.sum.dim_IntList, (x, [0]), {}).key()
    s1 = signature_of(aten.sum.dim_IntList, (x, [1]), {}).key()
    assert s0 != s1


def test_lr_change_does_not_change_foreach_key():
    ps = [torch.randn(3, 3) for _ in range(4)]
    k1 = signature_of(aten._foreach_add_.Scalar, (ps, 1e-3), {}).key()
    k2 = signature_of(aten._foreach_add_.Scalar, (ps, 5e-4), {}).key()
    assert k1 == k2


def test_long_tensor_lists_are_hashed_and_still_distinguish_shapes():
    ps = [torch.randn(3, i + 1) for i in range(LONG_LIST_TENSORS + 4)]
    k1 = signature_of(aten._foreach_mul_.Scalar, (ps, 0.9), {}).key()
    assert len(k1) < 120 and f"#{len(ps)}" in k1
    ps2 = [*ps[:-1], torch.randn(3, 99)]
    assert signature_of(aten._foreach_mul_.Scalar, (ps2, 0.9), {}).key() != k1


def test_tf32_switch_changes_fp32_matmul_key_only():
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(8, 8, device="cuda")
        h = torch.empty(8, 8, device="cuda", dtype=torch.bfloat16)
        old = torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = False
            off, hoff = signature_of(aten.mm.default, (a, a), {}).key(), signature_of(aten.mm.default, (h, h), {}).key()
            torch.backends.cuda.matmul.allow_tf32 = True
            on, hon = signature_of(aten.mm.default, (a, a), {}).key(), signature_of(aten.mm.default, (h, h), {}).key()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    assert off != on and on.endswith("tf32=True")
    assert hoff == hon
