"""CUDA reductions split across thread blocks take a global scratch buffer from the caching allocator
(interpose/reduce_scratch.py, a port of Reduce.cuh's setReduceConfig), and meta-device results of ops on
fake cuda tensors take no memory and run no kernel. The 64 MiB figure is the H200 measurement (torch 2.11,
memory history of ``sum(0)`` on a (1024, 8192) fp32 tensor); the rest follows from the port."""

from __future__ import annotations

import torch
from conftest import roofline_cfg
from torch._subclasses.fake_tensor import FakeTensorMode

from interpose import interposed
from interpose.reduce_scratch import scratch_bytes

aten = torch.ops.aten
MIB = 2**20


def _fake(shape, dtype=torch.float32):
    with FakeTensorMode():
        return torch.empty(shape, dtype=dtype, device="cuda")


def test_column_sum_scratch_is_the_measured_64_mib():
    x = _fake((1024, 8192))
    assert scratch_bytes(aten.sum.dim_IntList, (x, [0]), {}, 132) == (64 * MIB, 256)
    # a row reduction has a block per row and no global pass; so does a short column
    assert scratch_bytes(aten.sum.dim_IntList, (x, [1]), {}, 132) == (0, 0)
    assert scratch_bytes(aten.sum.dim_IntList, (_fake((64, 8192)), [0]), {}, 132) == (0, 0)
    # a full reduction splits across blocks but keeps one accumulator per block: a few bytes
    full, _ = scratch_bytes(aten.sum.default, (x,), {}, 132)
    assert 0 < full < 4096
    # not a modelled reduction
    assert scratch_bytes(aten.add.Tensor, (x, x), {}, 132) == (0, 0)


def test_scratch_follows_the_accumulator_and_the_layout():
    xb = _fake((1024, 8192), torch.bfloat16)
    assert scratch_bytes(aten.sum.dim_IntList, (xb, [0]), {}, 132)[0] == 64 * MIB  # bf16 sums accumulate in fp32
    assert scratch_bytes(aten.amax.default, (xb, [0]), {}, 132)[0] == 32 * MIB  # max accumulates in bf16
    xt = _fake((8192, 1024)).t()  # the same column sum, transposed storage: now along the fastest dim
    assert scratch_bytes(aten.sum.dim_IntList, (xt, [0]), {}, 132) == (0, 0)


def test_the_shim_charges_the_scratch_at_the_reduction_and_not_meta_results():
    with interposed(roofline_cfg("h200")):
        g = torch.empty(1024, 8192, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        b = g.sum(0)
        assert torch.cuda.memory_allocated() - base == 32768  # the result only: the scratch is given back
        assert torch.cuda.max_memory_allocated() - base == 32768 + 64 * MIB + 512  # buffer + semaphores at the call
        before = torch.cuda.memory_allocated()
        m = torch.zeros_like(g, device="meta")
        e = torch.empty_like(g, device="meta")
        assert m.device.type == e.device.type == "meta"
        assert torch.cuda.memory_allocated() == before
        del b
