"""CUDA-only entry points frameworks reach that a CPU build lacks: ``torch.cuda.default_generators``
and the RNG state round trip (Megatron's RNG tracker), ``torch.tensor([cuda scalars])`` (C++ reads each
element past the dispatch mode), and the process-group lifecycle (destroy subgroups, then the world)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import h100_roofline_cfg
from tests.frameworks_util import REPO, phantora_run


@pytest.fixture
def rt2():
    from interpose import interposed

    with interposed(h100_roofline_cfg(local_world_size=2)) as r:
        yield r


def test_default_generators_one_per_device_with_cuda_state(rt2):
    gens = torch.cuda.default_generators
    assert len(gens) == torch.cuda.device_count() == 2
    assert gens[1].device == torch.device("cuda", 1)
    assert isinstance(gens[0], torch.Generator)
    # Megatron's CudaRNGStatesTracker.add: save, seed, read the new state, restore the old one
    orig = torch.cuda.get_rng_state()
    assert orig.dtype == torch.uint8 and orig.numel() == 16
    torch.cuda.manual_seed(1234)
    forked = torch.cuda.get_rng_state()
    gens[torch.cuda.current_device()].set_state(orig)
    assert torch.cuda.initial_seed() != 1234
    torch.cuda.set_rng_state(forked)
    assert torch.cuda.initial_seed() == 1234
    torch.manual_seed(7)
    assert [g.initial_seed() for g in gens] == [7, 7]
    with pytest.raises(RuntimeError, match="16 bytes"):
        gens[0].set_state(torch.get_rng_state())
    with torch.random.fork_rng(devices=[0]):
        torch.randn(3, device="cuda", generator=gens[0])


def test_tensor_of_cuda_scalars(rt2):
    a = torch.tensor(3.0, device="cuda")
    b = torch.arange(4, device="cuda").sum()
    syncs = rt2.syncs
    t = torch.tensor([a, b])
    assert t.device.type == "cpu" and t.tolist() == [3.0, 6.0]
    assert rt2.syncs == syncs + 2, "each element is read back: a host-device sync"
    c = torch.tensor([a, b], device="cuda")
    assert c.is_cuda and c.tolist() == [3.0, 6.0]
    unknown = torch.randn(8, 8, device="cuda").float().mean(dim=0)  # a placeholder reads 0
    assert torch.tensor([unknown.sum(), a]).shape == (2,)


@pytest.mark.slow
def test_process_group_lifecycle(tmp_path):
    run = phantora_run(tmp_path, REPO / "tests" / "data" / "pg_lifecycle.py", ranks=2)
    assert run.code == 0, run.out[-3000:]
    assert "rank 0 destroyed: True" in run.out and "rank 1 destroyed: True" in run.out
    assert "rank 1 received [62, 7]" in run.out, "a broadcast of known values carries the root's"
    s = run.summary
    assert s["status"] == "complete" and s["iterations"] == 1
    c = run.collectives()
    ar = c[c.kind == "all_reduce"]
    # per round: one on each of the two world-sized subgroups, one on each rank's own group of one
    assert sorted(ar.ranks.value_counts().items()) == [(1, 4), (2, 4)]
    assert ar.group.nunique() == 8, "every round's subgroups are new groups"
    assert (c.kind == "barrier").sum() == 1 and (c.kind == "broadcast").sum() == 1


def test_module_cuda_with_weakrefs_to_parameters_keeps_them(rt2):
    """DeepSpeed keeps a ``weakref.finalize`` per parameter, then moves the CPU-built model itself."""
    import weakref

    m = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Linear(8, 8))
    params = list(m.parameters())
    finalizers = [weakref.finalize(p, lambda: None) for p in params]
    m.to("cuda")
    assert [p is q for p, q in zip(params, m.parameters(), strict=True)] == [True] * len(params)
    assert all(p.is_cuda and isinstance(p, torch.nn.Parameter) for p in m.parameters())
    assert all(f.alive for f in finalizers)


def test_param_data_assignment_of_a_cuda_tensor(rt2):
    """``param.data = param.to(device)`` (FSDP1's device_id move) gives a cuda Parameter, same object."""
    p = torch.nn.Parameter(torch.randn(4, 4))
    opt = torch.optim.SGD([p], lr=0.1)
    with torch.no_grad():
        p.data = p.to("cuda:1")
    assert p.device == torch.device("cuda", 1) and isinstance(p, torch.nn.Parameter) and p.requires_grad
    assert opt.param_groups[0]["params"][0] is p
    (p * 2).sum().backward()
    assert p.grad is not None and p.grad.device == p.device
    x = torch.randn(3)
    x.data = torch.zeros(3)  # CPU to CPU: the plain assignment
    assert x.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.timeout(60)
def test_multiprocessing_waits_use_real_time(rt2):
    """A simulated ``monotonic`` stands still while the rank blocks: ``connection.wait(timeout=0)``
    (``Process.start`` polls earlier children with it) would loop forever."""
    import multiprocessing.connection as mpc
    import os
    import time

    assert time.monotonic is not mpc.time.monotonic
    r, w = os.pipe()
    try:
        t0 = mpc.time.monotonic()
        assert mpc.wait([r], timeout=0) == []
        assert mpc.wait([r], timeout=0.05) == [] and mpc.time.monotonic() - t0 >= 0.05
    finally:
        os.close(r)
        os.close(w)
