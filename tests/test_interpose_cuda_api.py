"""torch.cuda.* and fake-cuda entry points behave like a real GPU under the shim."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import h100_roofline_cfg
from torch._subclasses.fake_tensor import FakeTensor

from interpose import RankConfig, interposed


@pytest.fixture
def cfg() -> RankConfig:
    return h100_roofline_cfg(local_world_size=2)


def test_device_queries(cfg):
    with interposed(cfg):
        assert torch.cuda.is_available()
        assert torch.cuda.device_count() == 2
        assert torch.cuda.current_device() == 0
        torch.cuda.set_device(1)
        assert torch.cuda.current_device() == 1
        torch.cuda.set_device(torch.device("cuda:0"))
        assert torch.cuda.get_device_name() == "NVIDIA H100 80GB HBM3"
        assert torch.cuda.get_device_capability(0) == (9, 0)
        p = torch.cuda.get_device_properties(0)
        assert p.total_memory == cfg.gpu.total_memory_bytes
        assert (p.major, p.minor, p.multi_processor_count) == (9, 0, 132)
        assert p.L2_cache_size == cfg.gpu.l2_cache_bytes
        assert torch.cuda.is_bf16_supported()
        assert torch.cuda.is_initialized()
        with torch.cuda.device(1):
            assert torch.cuda.current_device() == 1
        assert torch.cuda.current_device() == 0
    assert not hasattr(torch.cuda.Stream, "_wrap")  # restored


def test_moves_without_an_index_follow_set_device(cfg):
    """``.cuda()`` / ``.to("cuda")`` get their index in C++ (the device guard), not from torch.cuda."""
    with interposed(cfg):
        torch.cuda.set_device(1)
        assert torch.zeros(2).cuda().device == torch.device("cuda", 1)
        assert torch.zeros(2).to("cuda").device == torch.device("cuda", 1)
        assert nn.Linear(2, 2).cuda().weight.device == torch.device("cuda", 1)
        assert torch.zeros(2, device="cuda").device == torch.device("cuda", 1)
        with torch.cuda.device(0):
            assert torch.zeros(2).cuda().device == torch.device("cuda", 0)
        assert torch.zeros(2).cuda().device == torch.device("cuda", 1)
        torch.cuda.set_device(0)


def test_tensor_and_module_entry_points(cfg):
    with interposed(cfg):
        c = torch.randn(4, 4)
        assert type(c) is torch.Tensor  # CPU stays real
        for t in (c.cuda(), c.to("cuda"), c.to("cuda:0", non_blocking=True), c.to(torch.device("cuda"))):
            assert isinstance(t, FakeTensor) and t.device == torch.device("cuda", 0) and t.is_cuda
        assert torch.tensor([1.0, 2.0], device="cuda").device.type == "cuda"
        assert torch.zeros(3, device="cuda").device.type == "cuda"
        lin = nn.Linear(8, 8, device="cuda")  # uses uniform_ init on cuda
        assert lin.weight.is_cuda and isinstance(lin.weight, nn.Parameter)
        m = nn.Sequential(nn.Linear(8, 8), nn.ReLU()).cuda()
        assert all(p.is_cuda for p in m.parameters())
        m2 = nn.Linear(8, 8).to("cuda", dtype=torch.bfloat16)
        assert m2.weight.dtype == torch.bfloat16 and m2.weight.is_cuda
        w = m[0].weight
        m.bfloat16()  # dtype change of an already-cuda model keeps the Parameter objects
        assert m[0].weight is w and w.dtype == torch.bfloat16 and isinstance(w, nn.Parameter)
        m.float()
        pinned = c.pin_memory()
        assert pinned.is_pinned()
        back = m(torch.randn(2, 8).cuda()).cpu()
        assert type(back) is torch.Tensor and back.shape == (2, 8)
        assert back.detach().numpy().shape == (2, 8)


def test_data_dependent_values_are_placeholders_and_sync(cfg):
    with interposed(cfg) as rt:
        x = torch.randn(1024, 1024, device="cuda")
        y = x @ x
        s0 = rt.syncs
        assert y.sum().item() == 0.0
        assert rt.syncs == s0 + 1
        assert rt.clock.host_us >= rt.stream_ready_us(rt.current_stream)  # host waited for the GPU
        assert bool((y > 0).any()) is False
        assert int(torch.tensor(5, device="cuda")) == 5  # a value the host put there is known
        assert y[:2, :2].tolist() == [[0.0, 0.0], [0.0, 0.0]]
        nz = torch.nonzero(torch.ones(3, 4, device="cuda"))
        assert nz.shape == (12, 2)


def test_streams_and_events(cfg):
    with interposed(cfg) as rt:
        s = torch.cuda.Stream()
        assert s != torch.cuda.current_stream()
        assert torch.cuda.current_stream() == torch.cuda.default_stream()
        x = torch.randn(2048, 2048, device="cuda")
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            x = x @ x
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
        assert ms > 0
        assert end.query()
        with torch.cuda.stream(s):
            assert torch.cuda.current_stream() == s
            s.wait_stream(torch.cuda.default_stream())
            y = x + 1
        assert torch.cuda.current_stream() == torch.cuda.default_stream()
        side_ops = [r for r in rt._op_rows if r[0] == s.stream_id]
        assert side_ops and side_ops[0][4] >= rt.event_time_us(end._mark)  # waited for default stream
        torch.cuda.synchronize()
        assert s.query()
        del y


def test_memory_stats_and_misc_surface(cfg):
    with interposed(cfg):
        base = torch.cuda.memory_allocated()
        x = torch.empty(256, 1024, 1024, device="cuda", dtype=torch.uint8)  # 256 MiB
        assert torch.cuda.memory_allocated() - base == 256 << 20
        assert torch.cuda.max_memory_allocated() >= 256 << 20
        assert torch.cuda.memory_reserved() >= 256 << 20
        free, total = torch.cuda.mem_get_info()
        assert total == cfg.gpu.total_memory_bytes and free < total
        assert torch.cuda.memory_stats()["allocated_bytes.all.current"] == torch.cuda.memory_allocated()
        assert "Allocated memory" in torch.cuda.memory_summary()
        del x
        assert torch.cuda.memory_allocated() == base
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        assert torch.cuda.max_memory_allocated() == base
        torch.cuda.manual_seed(0)
        torch.cuda.manual_seed_all(0)
        torch.cuda.set_rng_state(torch.cuda.get_rng_state())
        torch.cuda.nvtx.range_push("x")
        torch.cuda.nvtx.range_pop()
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark,
                 torch.get_float32_matmul_precision())
        try:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
            f = torch.compile(lambda a: a * 2)
            assert f(torch.ones(2, device="cuda")).is_cuda
            torch.cuda.init()
        finally:  # process-wide flags: later tests' op keys would carry tf32=True
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved[0], saved[1]
            torch.set_float32_matmul_precision(saved[2])


def test_autocast_and_gradscaler(cfg):
    with interposed(cfg):
        w = torch.randn(64, 64, device="cuda", requires_grad=True)
        x = torch.randn(8, 64, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert (x @ w).dtype == torch.bfloat16
        with torch.cuda.amp.autocast(dtype=torch.float16):
            assert (x @ w).dtype == torch.float16
        scaler = torch.amp.GradScaler("cuda")
        assert scaler.is_enabled()
        opt = torch.optim.SGD([w], lr=0.1)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = (x @ w).float().sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        assert w.grad is not None and w.grad.dtype == torch.float32


def test_script_surface_save_generator_format_boolean_index(cfg, tmp_path):
    with interposed(cfg) as rt:
        g = torch.Generator(device="cuda")
        g.manual_seed(0)
        assert isinstance(g, torch.Generator) and isinstance(torch.Generator(), torch.Generator)
        assert g.device.type == "cuda"
        assert torch.randn(3, generator=g, device="cuda").is_cuda
        m = nn.Linear(4, 4).cuda()
        torch.save({"model": m.state_dict()}, tmp_path / "ckpt.pt")
        loaded = torch.load(tmp_path / "ckpt.pt")
        assert loaded["model"]["weight"].shape == (4, 4) and loaded["model"]["weight"].is_cuda  # fake again
        s0 = rt.syncs
        assert f"{torch.randn(1000, device='cuda').sum():.3f}" == "0.000"  # unknown floats: placeholder
        assert rt.syncs == s0 + 1
        x = torch.randn(500, device="cuda")
        assert x[x > 0].shape == (500,)  # boolean index on unknown data: every element assumed selected
        assert torch.unique(torch.tensor([1, 2, 2], device="cuda")).shape == (2,)  # known values: the real answer
        torch.set_default_device("cuda")
        try:
            assert torch.empty(2).is_cuda
        finally:
            torch.set_default_device(None)


def test_torch_accelerator_answers_like_torch_cuda(cfg):
    with interposed(cfg):
        assert torch.accelerator.is_available()
        assert torch.accelerator.current_accelerator().type == "cuda"
        assert torch.accelerator.device_count() == 2
        assert torch.accelerator.current_stream() == torch.cuda.current_stream()
        x = torch.empty(1 << 20, device="cuda", dtype=torch.uint8)
        assert torch.accelerator.memory_allocated() == torch.cuda.memory_allocated() >= 1 << 20
        torch.accelerator.synchronize()
        del x


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="CPU builds only")
def test_cuda_hooks_are_released_after_uninstall(cfg):
    with interposed(cfg):
        assert torch.accelerator.current_accelerator().type == "cuda"
        x = torch.randn(4, device="cuda", requires_grad=True)
    assert torch.accelerator.current_accelerator() is None
    assert not torch.cuda.is_available()
    # the fake guard stays, so autograd on a leftover fake tensor does not abort
    with torch._subclasses.fake_tensor.FakeTensorMode(allow_non_fake_inputs=True):
        (x * 2).sum()
