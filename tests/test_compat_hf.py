"""Hugging Face transformers models built from a config train and infer on the simulated GPU."""

from __future__ import annotations

import collections

import pytest

import profiles
from interpose import RankConfig, run_script

pytest.importorskip("transformers")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt2", "llama", "bert", "vit"])
def test_hf_training_loop(repo_root, model):
    gpu = profiles.get_gpu("h100")
    cfg = RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero")
    script = repo_root / "examples" / "compat" / "hf_train.py"
    r = run_script(str(script), [model, "--steps", "2", "--seq", "32", "--hidden", "128"], cfg)
    assert r.error is None and r.exit_code == 0
    assert len(r.iterations) == 2  # AdamW steps, scheduler and clip_grad_norm_ in between
    by_op = collections.Counter((o.op, o.dtype) for o in r.ops)
    assert by_op[("aten.mm.default", "bfloat16")] > 0  # autocast matmuls in bf16
    assert any(op.startswith("aten._foreach_") or op.startswith("aten._fused_adam") for op, _ in by_op)
    if model == "llama":  # attn_implementation="sdpa": a fused SDPA kernel, never the math path.
        # transformers treats FakeTensors as "tracing" and builds an explicit causal mask,
        # so this is memory-efficient attention where a real GPU would run flash.
        fused = [op for op, dt in by_op if "_scaled_dot_product_" in op and dt == "bfloat16"]
        assert fused and "aten._softmax.default" not in {op for op, _ in by_op}
    # parameters + AdamW state + activations of a 2-layer, 128-wide model: well under 1 GiB,
    # but at least the 32 MiB cuBLAS workspace
    assert 32 << 20 < r.peak_allocated_bytes < 1 << 30
