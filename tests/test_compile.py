"""torch.compile under the shim: the real Dynamo/AOTAutograd/Inductor, simulated Triton kernels (issue 18)."""

from __future__ import annotations

import pytest
import torch

from interpose import interposed

MiB4 = 4 << 20  # one fp32 tensor of 2**20 elements


def _kernels(rt, fn) -> list[tuple[str, str]]:
    n0 = len(rt._op_rows)
    fn()
    return [(r[1], r[6]) for r in rt._op_rows[n0:]]


def _chain(x, y):
    return (x * 2 + y).relu().sin().cos()


def test_compiled_pointwise_chain_is_one_fused_kernel(cfg):
    with interposed(cfg) as rt:
        x, y = torch.randn(1024, 1024, device="cuda"), torch.randn(1024, 1024, device="cuda")
        eager = _kernels(rt, lambda: _chain(x, y))
        compiled_fn = torch.compile(_chain)
        compiled_fn(x, y)  # compiles
        compiled = _kernels(rt, lambda: compiled_fn(x, y))
        out = compiled_fn(x, y)
    assert len(eager) == 5 and all(name.startswith("aten.") for name, _ in eager)
    assert [name for name, _ in compiled] == ["triton_poi_fused_add_cos_mul_relu_sin"]
    assert compiled[0][1] in ("profile", "family")
    assert out.shape == (1024, 1024) and out.device.type == "cuda"


def test_compiled_backward_saves_what_the_partitioner_saves(cfg):
    """sin(sin(sin(x))): eager autograd saves both intermediates and the output's input; AOTAutograd's
    min-cut partitioner saves only x (an input) and recomputes the chain in backward. After forward,
    eager holds 3 new 4 MiB tensors (two saved, the output), compiled 1 (the output); peaks 5 vs 3."""

    def f(x):
        return x.sin().sin().sin()

    got = []
    with interposed(cfg):
        for fn in (f, torch.compile(f)):
            x = torch.randn(1 << 20, device="cuda", requires_grad=True)
            torch.cuda.reset_peak_memory_stats()
            m0 = torch.cuda.memory_allocated()
            y = fn(x)
            after_fwd = torch.cuda.memory_allocated() - m0
            y.sum().backward()
            peak = torch.cuda.max_memory_allocated() - m0
            got.append((after_fwd // MiB4, peak // MiB4))
            del x, y
    (eager_fwd, eager_peak), (comp_fwd, comp_peak) = got
    assert (eager_fwd, comp_fwd) == (3, 1)
    assert comp_peak < eager_peak and (eager_peak, comp_peak) == (5, 3)


def test_graph_break_is_reported_in_the_results(cfg):
    from phantora.results.figures import build_summary

    def f(x):
        x = x.sin()
        torch._dynamo.graph_break()
        return x.cos()

    with interposed(cfg) as rt:
        out = torch.compile(f)(torch.randn(64, device="cuda"))
        assert out.shape == (64,)
    res = rt.result()
    assert res.compile["graph_break_count"] >= 1 and res.compile["unique_graphs"] == 2
    assert any("graph_break" in reason for reason in res.compile["graph_breaks"])
    summary = build_summary(results={0: res}, scenario={}, script="s.py", argv=[], host_time="zero", wall_s=0.0)
    assert summary["compile"]["graph_break_count"] == res.compile["graph_break_count"]


def test_reduce_overhead_replays_a_cuda_graph(cfg, monkeypatch):
    from interpose.cuda_graphs import CUDAGraph

    replays = []
    orig = CUDAGraph.replay
    monkeypatch.setattr(CUDAGraph, "replay", lambda self: (replays.append(len(self.kernels)), orig(self))[1])
    with interposed(cfg) as rt:
        x, y = torch.randn(512, 512, device="cuda"), torch.randn(512, 512, device="cuda")
        fn = torch.compile(lambda a, b: (a * 2 + b).relu() @ b, mode="reduce-overhead")
        for _ in range(3):
            fn(x, y)
        n = len(replays)
        host0 = rt.clock.host_us
        names = [name for name, _ in _kernels(rt, lambda: fn(x, y))]
    assert n >= 2 and len(replays) == n + 1 and replays[-1] == 2  # the fused kernel and the mm, replayed
    assert any(name.startswith("triton_poi_fused") for name in names)
    assert rt.clock.host_us > host0


def test_compile_eager_option_returns_the_function(cfg):
    import dataclasses

    def f(x):
        return x.sin().cos()

    with interposed(dataclasses.replace(cfg, compile="eager")) as rt:
        assert torch.compile(f) is f and torch.compile()(f) is f
        assert [n for n, _ in _kernels(rt, lambda: f(torch.randn(8, device="cuda")))][-2:] == [
            "aten.sin.default", "aten.cos.default"]
    assert rt.result().compile["frames_compiled"] == 0


def test_max_autotune_fails_with_one_line(cfg):
    with interposed(cfg), pytest.raises(RuntimeError, match="benchmarks kernels on the GPU"):
        torch.compile(lambda x: x, mode="max-autotune")


def test_compiled_attention_module_is_one_graph_with_the_fused_attention_kernel(cfg):
    """The shim's SDPA wrapper and its global module hooks are invisible to Dynamo: one graph, no breaks,
    and AOTAutograd traces the fused attention kernel a GPU picks (not the CPU build's math path)."""
    import torch.nn.functional as F

    class Attn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = torch.nn.Linear(64, 192)

        def forward(self, x):
            q, k, v = self.qkv(x).view(2, 128, 3, 4, 16).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True).sum()

    with interposed(cfg) as rt:
        m = torch.compile(Attn().cuda())
        x = torch.randn(2, 128, 64, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            m(x).backward()
            names = [name for name, _ in _kernels(rt, lambda: m(x).backward())]
    assert any("_scaled_dot_product_" in n and "attention" in n for n in names)
    assert not any(n.startswith(("aten.bmm", "triton_per_fused__softmax", "triton_per_fused__safe_softmax"))
                   for n in names)
    res = rt.result().compile
    assert res["graph_break_count"] == 0 and res["unique_graphs"] == 1


def test_a_recorded_h200_kernel_is_found_by_its_key(cfg):
    """The H200 sweep (torch 2.11 / Triton 3.6) keyed a bf16 layer norm over 256 rows of 1024 exactly as
    this torch's Inductor names and sizes it: the simulated kernel is the recording, not the model."""
    import dataclasses

    import torch.nn.functional as F

    import profiles

    h200 = dataclasses.replace(cfg, gpu=profiles.get_gpu("h200"))
    with interposed(h200) as rt:
        x = torch.randn(256, 1024, device="cuda", dtype=torch.bfloat16)
        fn = torch.compile(lambda t: F.layer_norm(t, t.shape[-1:]))
        fn(x)
        got = _kernels(rt, lambda: fn(x))
    assert got == [("triton_per_fused_native_layer_norm", "profile")]
    assert "triton_per_fused_native_layer_norm|r0_numel=1024,xnumel=256|bf16,bf16" in rt.key_times


def test_compile_time_is_not_simulated_host_time(cfg):
    """Measured host time: compiling takes this machine seconds of CPU time, which the compile callbacks
    bank as shim time; the simulated host clock moves by the compiled call's launches only."""
    import dataclasses

    import torch._inductor.config as inductor_config

    def f(x):
        return (x.sin() * 3).cos().exp()

    # a real (cold) compile, not a cache hit; config.patch, not monkeypatch: its undo hid the entry
    with inductor_config.patch(fx_graph_cache=False), interposed(dataclasses.replace(cfg, host_time="measured")) as rt:
        x = torch.randn(4096, device="cuda")
        fn = torch.compile(f)
        t0 = rt.clock.now_us()  # banks the script's time so far (importing Inductor is the script's)
        fn(x)
        advanced_us = rt.clock.now_us() - t0
    wall_us = rt.result().compile["compile_wall_s"] * 1e6
    assert wall_us > 0 and advanced_us < 0.1 * wall_us


def test_flex_attention_compiled_on_its_own_is_the_shims_op_and_autotuning_raises(cfg):
    """torch.compile(flex_attention) (PyTorch's recommended form) runs as the shim's flex attention op,
    labelled in the results; flex attention inside a compiled graph becomes a Triton template kernel
    (chosen by benchmarking candidates on a GPU) that no model here times: a one-line error, not a
    guessed kernel time."""
    from torch.nn.attention.flex_attention import flex_attention

    with interposed(cfg) as rt:
        q = torch.randn(1, 2, 128, 64, device="cuda")
        fa = torch.compile(flex_attention)
        assert fa is flex_attention
        assert fa(q, q, q).shape == q.shape
        assert "flex_attention" in rt.compile_stats.as_dict()["not_compiled"]

        def attn_block(x):
            return flex_attention(x.sin(), x, x)

        with pytest.raises(Exception, match="flex attention inside a compiled graph"):
            torch.compile(attn_block)(q)
