"""Hugging Face transformers models built from a config train and infer on the simulated GPU."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import profiles
from interpose import RankConfig, interposed, run_script

pytest.importorskip("transformers")

MEASURED = json.loads((Path(__file__).parent / "data" / "sdpa_h200_torch211.json").read_text())
CUDNN = "aten._scaled_dot_product_cudnn_attention.default"
CUDNN_BWD = "aten._scaled_dot_product_cudnn_attention_backward.default"
MASK_READ_OPS = {"aten.sum.default", "aten.eq.Scalar", "aten._to_copy.default", "aten._local_scalar_dense.default(d2h)"}
"""What transformers does with an all-ones mask on a GPU before dropping it: ``fast_all(mask)``."""


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
    if model == "llama":  # attn_implementation="sdpa", an all-ones mask: no mask is built, and
        # SDPA runs cuDNN attention causal with GQA, as on an H100 (tests/data/sdpa_h200_torch211.json)
        fused = {op for op, dt in by_op if "_scaled_dot_product_" in op and dt == "bfloat16"}
        assert "aten._scaled_dot_product_cudnn_attention.default" in fused
        assert not {"aten._safe_softmax.default", "aten.bmm.default"} & {op for op, _ in by_op}
    # parameters + AdamW state + activations of a 2-layer, 128-wide model: well under 1 GiB,
    # but at least the 32 MiB cuBLAS workspace
    assert 32 << 20 < r.peak_allocated_bytes < 1 << 30


def _h200_cfg() -> RankConfig:
    gpu = profiles.get_gpu("h200")
    return RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero")


def _tiny_causal_lm(model: str):
    import transformers as tf

    common = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512, max_position_embeddings=128)
    if model == "llama":
        cfg = tf.LlamaConfig(**common)
    else:
        cfg = tf.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "amp"])
@pytest.mark.parametrize("model", ["llama", "mixtral"])
def test_hf_causal_lm_attention_is_the_gpu_one(model, precision):
    """The config the real H200 ran (tests/data/sdpa_h200_torch211.json, ``hf_calls``): forward +
    backward runs one cuDNN attention per layer and its backward, never the math path; without a mask
    and with an all-ones mask no mask is built (the same ops, plus reading the mask) and k/v stay
    unrepeated (GQA); with padding the mask is passed and k/v are repeated, as on the GPU.
    ``amp`` is fp32 weights under bf16 autocast (Mixtral's grouped_mm experts then run in fp32)."""
    calls = {c["attention_mask"]: c for c in MEASURED["hf_calls"]["calls"]
             if c["precision"].startswith(precision.replace("amp", "fp32")) and c["kv"] in ("DynamicCache", "any")}
    with interposed(_h200_cfg()) as rt:
        m = _tiny_causal_lm(model)
        m = (m.to(torch.bfloat16) if precision == "bf16" else m).cuda().train()
        n_layers = m.config.num_hidden_layers
        ops = {}
        for mask in ("none", "ones", "pad"):
            ids = torch.randint(0, 512, (2, 128), device="cuda")
            kw = {"input_ids": ids, "labels": ids}
            if mask != "none":
                am = torch.ones(2, 128, dtype=torch.long, device="cuda")
                if mask == "pad":
                    am[1, :32] = 0  # left padding on sample 1
                kw["attention_mask"] = am
            m.zero_grad(set_to_none=True)
            n0 = len(rt._op_rows)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "amp"):
                loss = m(**kw).loss
            loss.backward()
            ops[mask] = [(r[1], r[2]) for r in rt._op_rows[n0:]]
    for mask, call in (("none", calls["none"]), ("ones", calls["all-ones"]), ("pad", calls["left padding on sample 1"])):
        names = collections.Counter(op for op, _ in ops[mask])
        assert names[CUDNN] == n_layers and names[CUDNN_BWD] == n_layers, (mask, names)
        assert not {"aten.bmm.default", "aten._safe_softmax.default"} & set(names), mask
        assert not any(op.startswith("aten._scaled_dot_product_") and op not in (CUDNN, CUDNN_BWD) for op in names)
        want = [call[t]["shape"] for t in ("q", "k", "v")] + ([call["attn_mask"]["shape"]] if call["attn_mask"] else [])
        got = {shapes for op, shapes in ops[mask] if op == CUDNN}
        assert got == {";".join("x".join(map(str, s)) for s in want)}, (mask, got)
    none, ones = (collections.Counter(op for op, _ in ops[k]) for k in ("none", "ones"))
    assert not none - ones and set(ones - none) <= MASK_READ_OPS, ones - none
    assert "aten.where.self" in {op for op, _ in ops["pad"]}  # the padding mask is built and converted


def test_transformers_sees_shim_fakes_as_real_tensors():
    """transformers' ``is_tracing`` is False for the simulated GPU's tensors (its mask checks read
    their values), True for the script's own FakeTensors; uninstall puts the original back."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers.utils import import_utils as iu

    orig = iu.is_fake_tensor
    with interposed(_h200_cfg()):
        x = torch.ones(4, device="cuda")
        assert not iu.is_tracing(x) and not iu.is_fake_tensor(x)
        with FakeTensorMode() as own:
            y = own.from_tensor(torch.ones(4))
        assert iu.is_fake_tensor(y) and iu.is_tracing(y)
    assert iu.is_fake_tensor is orig


@pytest.mark.slow
def test_transformers_imported_after_install_is_patched(repo_root):
    """``phantora run`` installs the shim before the script imports transformers."""
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, "tests")
        import torch
        from conftest import h100_roofline_cfg
        from interpose import interposed
        assert "transformers" not in sys.modules
        with interposed(h100_roofline_cfg()):
            from transformers.utils import import_utils as iu
            print("tracing", iu.is_tracing(torch.ones(2, device="cuda")))
        print("restored", iu.is_fake_tensor.__qualname__ == "is_fake_tensor")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "tracing False" in out.stdout and "restored True" in out.stdout
