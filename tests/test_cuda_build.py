"""The CUDA build of torch (PyPI's default wheel) on a machine without a GPU.

Marked ``cudabuild``: skipped on the CPU build (the README's test command), run by ``.ci/run``
in a second venv with PyPI's torch, torchvision and timm. ``phantora run`` goes through a
stand-in CUDA driver (a ``libcuda.so.1`` first on ``LD_LIBRARY_PATH`` that logs every call),
so "the shim never calls the driver" is checked, not assumed, on any machine. With
``PHANTORA_CPU_PYTHON`` naming a CPU build's interpreter (``.ci/run`` sets it), the examples also
run there and the two builds must simulate the same op stream, times and memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cudabuild

REPO = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-embd", "64", "--n-head", "2", "--seq-len", "32", "--vocab-size", "256",
        "--batch-size", "2", "--steps", "3"]

_FAKE_DRIVER_C = textwrap.dedent("""
    #include <stdio.h>
    #include <stdlib.h>
    static int note(const char* fn) {
      const char* p = getenv("PHANTORA_DRIVER_LOG");
      FILE* f = p ? fopen(p, "a") : NULL;
      if (f) { fprintf(f, "%s\\n", fn); fclose(f); }
      return 100; /* CUDA_ERROR_NO_DEVICE */
    }
    #define STUB(name) int name() { return note(#name); }
    STUB(cuInit) STUB(cuDriverGetVersion) STUB(cuGetProcAddress) STUB(cuGetProcAddress_v2)
    STUB(cuDeviceGetCount) STUB(cuDeviceGet) STUB(cuGetExportTable) STUB(cuCtxGetCurrent)
""")


@pytest.fixture(scope="module")
def driver_dir(tmp_path_factory) -> Path:
    """A directory holding a stand-in ``libcuda.so.1`` whose entry points log their name."""
    d = tmp_path_factory.mktemp("fake_driver")
    (d / "fake.c").write_text(_FAKE_DRIVER_C)
    proc = subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-o", str(d / "libcuda.so.1"),
                           str(d / "fake.c")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"no C compiler for the stand-in driver: {proc.stderr[-500:]}")
    return d


def _env(driver_dir: Path, log: Path) -> dict[str, str]:
    env = dict(os.environ, PHANTORA_DRIVER_LOG=str(log))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(driver_dir), env.get("LD_LIBRARY_PATH")) if p)
    return env


def phantora_run(python: str, out: Path, args: list[str], env: dict[str, str] | None = None,
                 timeout: int = 600) -> tuple[dict, list[dict], str]:
    """``phantora run --json`` in a subprocess: (summary row, iteration rows, the script's output)."""
    proc = subprocess.run([python, "-m", "phantora", "run", "--json", "--out", str(out), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = next(r for r in rows if r.get("row") == "summary")
    return summary, [r for r in rows if r.get("row") == "iteration"], proc.stderr


def ops_of(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "ops.parquet")


def run_checked(tmp_path: Path, driver_dir: Path, args: list[str], name: str = "run"):
    """``phantora run`` on this (CUDA) build through the stand-in driver; it must never be called."""
    log = tmp_path / f"{name}.driver.log"
    summary, iters, stderr = phantora_run(sys.executable, tmp_path / name, args, _env(driver_dir, log))
    assert not log.exists(), f"the CUDA driver was called: {log.read_text().split()}"
    return summary, iters, stderr, ops_of(tmp_path / name)


def test_this_is_the_cuda_build():
    assert torch.backends.cuda.is_built() and torch.backends.cudnn.is_available()
    assert not torch.cuda.is_available(), "these tests are about machines without a GPU"


# -- the examples: same simulation as on the CPU build ----------------------------------------------
EXAMPLES = {
    "gpt": ["examples/gpt/train.py", "--steps", "3"],
    "ddp": ["--scenario", "scenarios/h200x2.yaml", "examples/ddp/train.py", *TINY],
    "ddp_unused": ["--scenario", "scenarios/h200x2.yaml", "examples/ddp/train.py", *TINY,
                   "--find-unused-parameters"],
    "fsdp2": ["--scenario", "scenarios/h200x2.yaml", "examples/fsdp2/train.py", *TINY],
    "tp2d": ["--scenario", "scenarios/h200x8.yaml", "--nproc-per-node", "4", "examples/tp2d/train.py", *TINY,
             "--tp", "2"],
    "pipeline": ["--scenario", "scenarios/h200x8.yaml", "--nproc-per-node", "2", "examples/pipeline/train.py",
                 "--layers", "4", "--dim", "512", "--seq-len", "256", "--steps", "3"],
    "moe": ["examples/moe/train.py", "--steps", "3", "--layers", "2"],
    "moe_grouped": ["examples/moe/train.py", "--steps", "3", "--layers", "2", "--experts-impl", "grouped_mm"],
    "generate": ["examples/generate/generate.py", "--layers", "2", "--hidden", "512", "--new-tokens", "8"],
    "hf_gpt2": ["examples/compat/hf_train.py", "gpt2"],
    "hf_vit": ["examples/compat/hf_train.py", "vit"],
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_run_as_on_the_cpu_build(name, tmp_path, driver_dir):
    summary, iters, _, ops = run_checked(tmp_path, driver_dir, EXAMPLES[name], name)
    assert summary["iterations"] == len(iters) > 0 and summary["peak_allocated_mib"] > 0
    assert all(r["sim_ms"] > 0 for r in iters)
    cpu = os.environ.get("PHANTORA_CPU_PYTHON")
    if not cpu:
        return
    ref, ref_iters, _ = phantora_run(cpu, tmp_path / f"{name}-cpu", EXAMPLES[name])
    assert [r["sim_ms"] for r in iters] == [r["sim_ms"] for r in ref_iters]
    for key in ("iterations", "mean_ms_per_iter_excluding_first", "peak_allocated_mib", "peak_reserved_mib",
                "gpu_busy_pct"):
        assert summary[key] == ref[key], key
    ref_ops = ops_of(tmp_path / f"{name}-cpu")
    assert ops.equals(ref_ops), "the two builds simulated different op streams"


def test_gpt_example_memory_and_attention(tmp_path, driver_dir):
    """The default run as documented (README: 8313.5 MiB peak, cuDNN attention)."""
    summary, iters, stderr, ops = run_checked(tmp_path, driver_dir, ["examples/gpt/train.py", "--steps", "2"])
    assert len(iters) == 2
    assert summary["peak_allocated_mib"] == pytest.approx(8313.5, rel=0.01)
    assert f"max_memory_allocated: {summary['peak_allocated_mib']:.1f} MiB" in stderr
    assert (ops.op == "aten._scaled_dot_product_cudnn_attention.default").sum() == 2 * 12


# -- vision programs: torchvision and timm as their reference scripts train ------------------------------
def vision(tmp_path, driver_dir, lib: str, model: str, *flags: str, steps: int = 3, batch: int = 32):
    args = ["examples/vision/train.py", "--lib", lib, "--model", model, "--steps", str(steps),
            "--batch-size", str(batch), *flags]
    summary, iters, stderr, ops = run_checked(tmp_path, driver_dir, args, f"{lib}-{model}")
    assert summary["iterations"] == len(iters) == steps
    assert summary["iteration_kind"] == "optimizer_step"
    # the script's own max_memory_allocated is the simulated peak
    assert f"max_memory_allocated: {summary['peak_allocated_mib']:.1f} MiB" in stderr
    return summary, ops


def n_params(lib: str, model: str) -> int:
    if lib == "timm":
        import timm

        m = timm.create_model(model)
    else:
        import torchvision

        m = torchvision.models.get_model(model)
    return sum(p.numel() for p in m.parameters())


def assert_cudnn_paths(ops, amp_dtype: str | None):
    """Convolutions and batch norms take the paths a GPU takes: cuDNN batch norm, except for bf16
    inputs, which ATen's ``_batch_norm_impl_index`` never gives cuDNN (its native CUDA kernel);
    no slow/CPU convolution kernels."""
    names = set(ops.op)
    assert {"aten.convolution.default", "aten.convolution_backward.default"} <= names
    assert not any("slow_conv" in n or "thnn_conv" in n or "mkldnn" in n for n in names), names
    bn = ops[ops.op.str.contains("batch_norm")]
    kind = "native" if amp_dtype == "bfloat16" else "cudnn"
    assert set(bn.op) == {f"aten.{kind}_batch_norm.default", f"aten.{kind}_batch_norm_backward.default"}
    if amp_dtype is not None:
        conv = ops[ops.op == "aten.convolution.default"]
        assert set(conv.dtype) == {amp_dtype}, "convolutions run in the autocast dtype"


def test_resnet50_amp_fp16_channels_last(tmp_path, driver_dir):
    """torchvision's reference recipe with --amp (fp16, GradScaler) and channels_last."""
    summary, ops = vision(tmp_path, driver_dir, "torchvision", "resnet50", "--amp", "--channels-last")
    assert_cudnn_paths(ops, "float16")
    names = set(ops.op)
    assert "aten._amp_foreach_non_finite_check_and_unscale_.default" in names  # GradScaler.step
    params_mib = n_params("torchvision", "resnet50") * 4 / 2**20
    # weights + grads + momentum, the fp16 weight copies and activations of batch 32 at 224 px
    assert 3 * params_mib < summary["peak_allocated_mib"] < 3 * params_mib + 4096


def test_resnet50_bf16_channels_last(tmp_path, driver_dir):
    _, ops = vision(tmp_path, driver_dir, "torchvision", "resnet50", "--amp", "--amp-dtype", "bfloat16",
                    "--channels-last")
    assert_cudnn_paths(ops, "bfloat16")
    assert "aten._amp_foreach_non_finite_check_and_unscale_.default" not in set(ops.op)  # no GradScaler


def test_resnet18_fp32_uses_more_memory_than_amp(tmp_path, driver_dir):
    fp32, ops = vision(tmp_path, driver_dir, "torchvision", "resnet18")
    assert_cudnn_paths(ops, None)
    amp, _ = vision(tmp_path / "amp", driver_dir, "torchvision", "resnet18", "--amp", "--channels-last")
    assert amp["peak_allocated_mib"] < fp32["peak_allocated_mib"], "fp16 activations are half the size"


def test_timm_convnext_bf16_channels_last(tmp_path, driver_dir):
    """Depthwise 7x7 convolutions and channels-last LayerNorm; no batch norm."""
    _, ops = vision(tmp_path, driver_dir, "timm", "convnext_tiny", "--amp", "--amp-dtype", "bfloat16",
                    "--channels-last", steps=2, batch=16)
    assert {"aten.convolution.default", "aten.convolution_backward.default"} <= set(ops.op)
    assert not ops.op.str.contains("batch_norm").any()


def test_timm_efficientnet_fp16_channels_last(tmp_path, driver_dir):
    _, ops = vision(tmp_path, driver_dir, "timm", "efficientnet_b0", "--amp", "--channels-last", steps=2)
    assert_cudnn_paths(ops, "float16")


def test_timm_vit_bf16_fused_attention(tmp_path, driver_dir):
    """timm's ViT attention is SDPA: one fused attention kernel per block, as on an H100."""
    _, ops = vision(tmp_path, driver_dir, "timm", "vit_small_patch16_224", "--amp", "--amp-dtype", "bfloat16",
                    steps=2)
    fused = ops[ops.op.str.startswith("aten._scaled_dot_product_") & ~ops.op.str.contains("backward")]
    assert len(fused) == 2 * 12 and set(fused.op) == {"aten._scaled_dot_product_cudnn_attention.default"}
    assert not ops.op.isin(["aten._safe_softmax.default", "aten.bmm.default"]).any()


# -- in-process: what the CUDA build's C++ sees ---------------------------------------------------------
def test_cudnn_queries_answer_for_the_simulated_gpu(rt):
    """Conv backend selection and batch norm take cuDNN with the simulated GPU's capability; channels-last
    convolutions give channels-last outputs (what cuDNN returns)."""
    conv = torch._C._ConvBackend
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(8, 32, 28, 28, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(64, 32, 3, 3, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        args = ([1, 1], [1, 1], [1, 1], False, [0, 0])
        assert torch._C._select_conv_backend(x, w, None, *args, 1, None) == conv.Cudnn
        y = torch.nn.functional.conv2d(x, w, padding=1)
        assert y.is_contiguous(memory_format=torch.channels_last)
    bn = torch.nn.BatchNorm2d(64).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        z = bn(y.half())
    assert z.is_contiguous(memory_format=torch.channels_last)
    assert [o.op for o in rt.result().ops][-1] == "aten.cudnn_batch_norm.default"
    assert torch.backends.cudnn.version() == torch._C._cudnn.getVersionInt()


def test_recurrent_layers_and_torchvision_ops(rt):
    import torchvision

    lstm = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True).cuda()
    out, (h, c) = lstm(torch.randn(4, 5, 16, device="cuda"))
    assert out.shape == (4, 5, 32) and h.shape == c.shape == (2, 4, 32)
    out.sum().backward()
    rnn = torch.nn.RNN(16, 8, bidirectional=True).cuda()
    assert rnn(torch.randn(5, 4, 16, device="cuda"))[0].shape == (5, 4, 16)
    boxes = torch.rand(50, 4, device="cuda") * 100
    boxes[:, 2:] += boxes[:, :2]
    keep = torchvision.ops.nms(boxes, torch.rand(50, device="cuda"), 0.5)
    assert keep.shape == (50,) and keep.dtype == torch.long  # unknown boxes: the upper bound
    known = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], device="cuda")
    assert torchvision.ops.nms(known, torch.tensor([0.9, 0.8, 0.7], device="cuda"), 0.5).tolist() == [0, 2]
    feat = torch.randn(2, 16, 32, 32, device="cuda", requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 10, 10], [1, 5, 5, 20, 20]], dtype=torch.float, device="cuda")
    torchvision.ops.roi_align(feat, rois, (7, 7)).sum().backward()
    assert feat.grad.shape == feat.shape
    names = {o.op for o in rt.result().ops}
    assert {"torchvision.nms.default", "torchvision.roi_align.default", "torchvision._roi_align_backward.default"} <= names


def test_torch_cuda_functions_that_would_reach_the_driver(rt):
    assert torch.cuda.current_blas_handle() != 0 and torch.cuda.current_solver_handle() != 0
    torch.cuda.set_per_process_memory_fraction(0.5)
    assert torch.cuda.get_per_process_memory_fraction() == 0.5
    x = torch.empty(1 << 20, device="cuda", dtype=torch.uint8)
    nested = torch.cuda.memory_stats_as_nested_dict()
    assert nested["allocated_bytes"]["all"]["current"] == torch.cuda.memory_allocated() >= 1 << 20
    segments = torch.cuda.memory_snapshot()  # the allocator model's segments (interpose.memory_history)
    assert any(b["state"] == "active_allocated" and b["size"] >= 1 << 20 for seg in segments for b in seg["blocks"])
    del x
    with torch.profiler.profile() as prof, torch.profiler.record_function("step"):
        torch.randn(8, 8, device="cuda").sum()
    assert any(e.name == "step" for e in prof.events())


def test_no_driver_call_from_the_torch_cuda_surface(tmp_path, driver_dir):
    """Every argument-free ``torch.cuda``/``torch.backends`` function under the shim, in a process whose
    CUDA driver is the stand-in: none of them may reach it, except the few named below (not simulated;
    the CPU build has none of them). The profiler is left out: kineto itself asks cudart for the device
    count once per process (see interpose/README.md, "The CUDA build of torch")."""
    script = tmp_path / "surface.py"
    script.write_text(textwrap.dedent("""
        import inspect, sys
        sys.path.insert(0, sys.argv[1])
        import torch
        from conftest import h100_roofline_cfg
        from interpose import interposed
        skip = {"memory._save_memory_usage", "memory._save_segment_usage",  # download flamegraph.pl
                # reach the driver on a CUDA build (cuBLAS handles, the allocator's device metadata)
                "backends.cuda.cublas_workspace_size", "backends.cuda.cublaslt_workspace_size",
                "backends.cuda.blas_workspace_size", "memory._get_memory_metadata"}
        with interposed(h100_roofline_cfg()):
            for prefix, mod in (("", torch.cuda), ("memory.", torch.cuda.memory), ("cudnn.", torch.backends.cudnn),
                                ("backends.cuda.", torch.backends.cuda)):
                for name in sorted(vars(mod)):
                    f = getattr(mod, name)
                    if name.startswith("__") or prefix + name in skip or not callable(f) or isinstance(f, type):
                        continue
                    try:
                        sig = inspect.signature(f)
                    except (TypeError, ValueError):
                        continue
                    if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                           for p in sig.parameters.values()):
                        continue
                    try:
                        f()
                    except Exception:
                        pass
        print("done")
    """))
    log = tmp_path / "driver.log"
    proc = subprocess.run([sys.executable, str(script), str(REPO / "tests")], cwd=tmp_path, env=_env(driver_dir, log),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
    assert not log.exists(), f"the CUDA driver was called: {log.read_text().split()}"


# -- the conformance zoo's vision programs against their real H200 op streams (docs/conformance.md) -------
def _zoo_vision() -> dict[str, list[str]]:
    rows = (REPO / "examples" / "zoo" / "programs.tsv").read_text().splitlines()
    return {n: a.split() for n, a in (r.split("\t") for r in rows if r and not r.startswith("#"))
            if a.startswith("examples/zoo/vision.py")}  # fmt: skip


@pytest.mark.parametrize("name", sorted(_zoo_vision()))
def test_vision_zoo_program_runs_the_kernels_the_h200_ran(name, tmp_path, driver_dir):
    """``phantora conformance`` of each vision zoo program, unmodified, against the H200 trace and profile
    shipped in docs/data/conformance/zoo_h200.tar.gz: at least 99% of the real GPU time in ops the
    simulator ran exactly (issue 13's target)."""
    import tarfile

    with tarfile.open(REPO / "docs" / "data" / "conformance" / "zoo_h200.tar.gz") as tar:
        for member in (f"traces/{name}.gz", f"profiles/{name}.jsonl"):
            tar.extract(member, tmp_path, filter="data")
    cmd = [sys.executable, "-m", "phantora", "conformance", "--json", "--real-trace",
           str(tmp_path / "traces" / f"{name}.gz"), "--real-profile", str(tmp_path / "profiles" / f"{name}.jsonl"),
           "--scenario", "scenarios/h200x1.yaml", "--sim", str(tmp_path / "sim"), *_zoo_vision()[name]]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=_env(driver_dir, tmp_path / "driver.log"), capture_output=True,
                          text=True, timeout=900, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = next(json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"kind": "summary"'))
    assert summary["shares"]["matched"] >= 0.99, summary
