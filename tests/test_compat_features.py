"""PyTorch features real training scripts use, run on the simulated GPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _ops(rt, since: int = 0) -> list[tuple[str, str]]:
    return [(o.op, o.dtype) for o in rt.result().ops[since:]]


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32)).cuda()


@pytest.mark.parametrize("reentrant", [True, False])
def test_activation_checkpointing_recomputes_forward(rt, reentrant):
    m = _mlp()
    x = torch.randn(4, 32, device="cuda", requires_grad=True)
    n0 = len(rt.result().ops)
    checkpoint(m, x, use_reentrant=reentrant).sum().backward()
    ops = [op for op, _ in _ops(rt, n0)]
    # 2 addmm in forward, then recomputed in backward: reentrant reruns the whole
    # forward; non-reentrant stops once the saved tensors it needs exist (early stop)
    assert ops.count("aten.addmm.default") == (4 if reentrant else 3)
    assert x.grad is not None and x.grad.shape == (4, 32)
    assert all(p.grad is not None for p in m.parameters())


def test_cross_entropy_ignore_index_backward(rt):
    logits = torch.randn(8, 10, device="cuda", requires_grad=True)
    tgt = torch.randint(0, 10, (8,), device="cuda")
    loss = F.cross_entropy(logits, tgt.masked_fill(tgt > 5, -100), ignore_index=-100)
    loss.backward()
    ops = [op for op, _ in _ops(rt)]
    assert "aten.nll_loss_forward.default" in ops and "aten.nll_loss_backward.default" in ops
    assert logits.grad.shape == (8, 10)


def test_grad_scaler_fp16_steps_optimizer(rt):
    m = nn.Linear(32, 32).cuda()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = m(torch.randn(4, 32, device="cuda")).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        scaler.step(opt)  # found_inf placeholder is 0: the step is taken
        scaler.update()
        opt.zero_grad()
    assert len(rt.iterations) == 2
    assert ("aten.addmm.default", "float16") in _ops(rt)


def test_deprecated_cuda_amp_paths(rt):
    m = _mlp()
    with torch.cuda.amp.autocast():
        y = m(torch.randn(4, 32, device="cuda"))
    assert y.dtype == torch.float16
    assert torch.cuda.amp.GradScaler().is_enabled()


def test_compile_eager_option_is_a_passthrough_and_max_autotune_says_it_is_not_simulated():
    """``phantora run --compile eager`` keeps the old behaviour (the function itself); by default
    torch.compile is simulated (tests/test_compile.py) and a mode that benchmarks kernels on the GPU
    while compiling is a one-line error, never a silent eager run."""
    from conftest import h100_roofline_cfg

    from interpose import interposed

    with interposed(h100_roofline_cfg(compile="eager")):
        m = _mlp()
        assert torch.compile(m) is m
        f = torch.compile(mode="max-autotune", fullgraph=True)(lambda t: t * 2)
        assert f(torch.ones(3, device="cuda")).is_cuda
    with interposed(h100_roofline_cfg()), pytest.raises(RuntimeError, match="not simulated"):
        torch.compile(mode="max-autotune")(lambda t: t * 2)


def test_dataloader_pin_memory_non_blocking_copy(rt):
    ds = torch.utils.data.TensorDataset(torch.randn(16, 32), torch.randint(0, 10, (16,)))
    n = 0
    for a, _ in torch.utils.data.DataLoader(ds, batch_size=4, pin_memory=True, num_workers=0, shuffle=True):
        assert a.is_pinned()
        a = a.cuda(non_blocking=True)
        assert a.is_cuda and a.device.type == "cuda"
        n += 1
    assert n == 4
    assert [op for op, _ in _ops(rt)].count("aten._to_copy.default(h2d)") == 4
    assert rt.syncs == 0  # non_blocking copies from pinned memory do not sync


def test_sdpa_backend_context_managers(rt, monkeypatch):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 4, 16, 64, device="cuda", dtype=torch.bfloat16)
    F.scaled_dot_product_attention(q, q, q, is_causal=True)  # sm90 default: cuDNN first
    F.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(16, 16, device="cuda", dtype=torch.bool))
    with torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False,
                                        enable_cudnn=False):
        F.scaled_dot_product_attention(q, q, q, is_causal=True)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        F.scaled_dot_product_attention(q, q, q, is_causal=True)
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
        F.scaled_dot_product_attention(q, q, q)
    monkeypatch.setenv("TORCH_CUDNN_SDPA_DEPRIORITIZED", "1")
    F.scaled_dot_product_attention(q, q, q, is_causal=True)  # flash, as on a GPU with that variable
    ops = [op for op, _ in _ops(rt)]
    assert ops.count("aten._scaled_dot_product_cudnn_attention.default") == 2
    assert ops.count("aten._scaled_dot_product_flash_attention.default") == 3
    assert ops.count("aten._scaled_dot_product_efficient_attention.default") == 1


def test_device_queries_and_capability_gating(rt):
    assert torch.cuda.get_device_capability() == (9, 0)
    assert torch.cuda.get_device_capability(0) >= (8, 0) and torch.cuda.is_bf16_supported()
    x = torch.zeros(2, device=torch.device("cuda", 0))
    assert x.is_cuda and x.device.type == "cuda" and x.get_device() == 0 and not x.cpu().is_cuda
    torch.manual_seed(1)
    torch.cuda.manual_seed(1)
    torch.cuda.manual_seed_all(1)
    torch.set_float32_matmul_precision("high")


def test_memory_stats_keys_scripts_read(rt):
    x = torch.empty(1 << 20, device="cuda")  # 4 MiB
    st = torch.cuda.memory_stats()
    for k in ("allocated_bytes.all.peak", "allocated_bytes.all.current", "reserved_bytes.all.peak",
              "active_bytes.all.peak", "num_alloc_retries", "num_ooms"):  # fmt: skip
        assert k in st
    assert st["allocated_bytes.all.peak"] >= 4 << 20 == x.nbytes


def test_event_timing_nvtx_and_profiler(rt):
    from torch.profiler import ProfilerActivity, profile, record_function

    m = _mlp()
    x = torch.randn(64, 32, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.nvtx.range_push("fwd")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]), record_function("fwd"):
        start.record()
        m(x)
        end.record()
    torch.cuda.nvtx.range_pop()
    end.synchronize()
    kernels_us = sum(o.dur_us for o in rt.result().ops if o.op != "aten._to_copy.default(h2d)")
    assert start.elapsed_time(end) == pytest.approx(kernels_us / 1000.0, rel=0.5)
    assert start.elapsed_time(end) > 0


def test_data_dependent_placeholders(rt):
    t = torch.randn(10, 400, device="cuda")  # floats beyond the small-host-float limit: unknown values
    m = t[:, 0] > 0
    syncs0 = rt.syncs
    assert t[m].shape == (10, 400)  # every element selected: an upper bound
    assert m.nonzero().shape == (10, 1)
    assert torch.where(m)[0].shape == (10,)
    assert torch.unique(t.to(torch.long)).shape == (4000,)  # from unknown data: the upper bound too
    assert t.sum().item() == 0.0 and bool(t.sum()) is False
    # all() reads True, any() False: anomaly checks take the "nothing unusual" branch
    assert bool(torch.isfinite(t).all()) is True and torch.isnan(t).any().item() is False
    assert rt.syncs > syncs0


def test_misc_kernels(rt):
    x = torch.randn(4, 32, device="cuda", requires_grad=True)
    eb = nn.EmbeddingBag(100, 16, mode="mean").cuda()
    assert eb(torch.randint(0, 100, (8, 4), device="cuda")).shape == (8, 16)
    assert F.rms_norm(x, (32,)).shape == (4, 32) and F.layer_norm(x, (32,)).shape == (4, 32)
    a = torch.randn(2, 4, 8, 16, device="cuda")
    assert torch.einsum("bhqd,bhkd->bhqk", a, a).shape == (2, 4, 8, 8)
    assert x.masked_fill(x > 0, float("-inf")).shape == (4, 32)
    assert torch.where(x > 0, x, 0.0).sum().requires_grad
    ops = {op for op, _ in _ops(rt)}
    assert {"aten._embedding_bag.default", "aten.bmm.default", "aten.native_layer_norm.default"} <= ops


def test_complex_rotary_embedding(rt):
    """Llama/torchtitan rotary embeddings: polar frequencies, view_as_complex, backward."""
    freqs = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    freqs = torch.outer(torch.arange(32).float(), freqs)
    freqs_cis = torch.polar(torch.ones_like(freqs), freqs).cuda()
    assert freqs_cis.dtype == torch.complex64 and freqs_cis.is_cuda
    xq = torch.randn(2, 32, 4, 16, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    out = torch.view_as_real(xq_ * freqs_cis.view(1, 32, 1, 8)).flatten(3).type_as(xq)
    out.sum().backward()
    assert out.dtype == torch.bfloat16 and xq.grad.shape == xq.shape
    assert ("aten.mul.Tensor", "complex64") in _ops(rt)


def test_inference_mode_moves_and_views(rt):
    m = _mlp()
    with torch.inference_mode():
        x = torch.randint(0, 10, (4, 32)).to("cuda", non_blocking=True).float()
        y = m(x)[:, :8]
    assert y.is_cuda and y.shape == (4, 8) and not y.requires_grad
    with torch.no_grad():
        assert not m(x).requires_grad


def test_distributed_not_initialised(rt):
    import torch.distributed as dist

    assert dist.is_available() and not dist.is_initialized()


def test_flex_attention_is_simulated_and_timed_by_mask_density(rt):
    """torch.nn.attention.flex_attention (a higher-order op) runs on fake tensors; its kernels are
    timed as flash attention on the same q/k/v, scaled by the block mask's density."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    S = 1024
    q = torch.randn(2, 4, S, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    def run(mask_mod):
        mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=S, KV_LEN=S, device="cuda")
        n = len(rt.result().ops)
        out = flex_attention(q, q, q, block_mask=mask)
        out.sum().backward()
        assert out.shape == q.shape and q.grad is not None
        return {o.op: o.dur_us for o in rt.result().ops[n:] if o.op.startswith("higher_order.")}

    full = run(lambda b, h, qi, kv: qi >= 0)
    causal = run(lambda b, h, qi, kv: qi >= kv)
    assert set(full) == {"higher_order.flex_attention", "higher_order.flex_attention_backward"}
    f, c = full["higher_order.flex_attention"], causal["higher_order.flex_attention"]
    # 1024 / 128 = 8 blocks a side: a causal mask computes the 36 of 64 blocks on or below the diagonal
    assert c == pytest.approx(f * 36 / 64)
    assert full["higher_order.flex_attention_backward"] == pytest.approx(2.5 * f)


def test_cuda_graph_capture_records_and_replay_runs_behind_one_launch(rt):
    """torch.cuda.graph / CUDAGraph: kernels captured (not run), replayed with one launch."""
    import time

    m = nn.Sequential(*[nn.Linear(512, 512) for _ in range(6)]).cuda()
    x = torch.randn(32, 512, device="cuda")
    with torch.no_grad():
        t0 = time.time()
        for _ in range(10):
            m(x)
        torch.cuda.synchronize()
        eager = time.time() - t0
        g = torch.cuda.CUDAGraph()
        n = len(rt.result().ops)
        with torch.cuda.graph(g):
            assert torch.cuda.is_current_stream_capturing()
            m(x)
        assert len(rt.result().ops) == n, "capture runs no kernel"
        assert not torch.cuda.is_current_stream_capturing()
        t0 = time.time()
        for _ in range(10):
            g.replay()
        torch.cuda.synchronize()
        replay = time.time() - t0
    ops = [o.op for o in rt.result().ops[n:]]
    assert ops.count("aten.addmm.default") == 10 * 6
    assert replay < eager, "one graph launch instead of one launch per kernel"
    assert isinstance(torch.cuda.graph_pool_handle(), tuple)
