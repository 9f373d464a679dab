"""TorchTitan 0.3.0 (``phantora run -m torchtitan.train``, llama3_debugmodel, its full_dtensor SPMD
backend) on 2 ranks: FSDP2, tensor parallel (with its sequence parallelism), context parallel; each
issuing the collectives TorchTitan issues. MoE with expert parallelism: tests/test_dist_moe_ep.py."""

from __future__ import annotations

import importlib.util

import pytest

from tests.frameworks_util import Run, assert_sensible, phantora_run

if importlib.util.find_spec("torchtitan") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("torchtitan 0.3.0 and triton (imported by torchtitan) are not installed "
                "(pip install -e '.[frameworks]')", allow_module_level=True)

COMMON = ("--module", "llama3", "--config", "llama3_debugmodel", "--training.steps", "3",
          "--parallelism.spmd-backend", "full_dtensor", "--checkpoint.no-enable", "--training.disable-cuda-graphs")
CONFIGS = {
    "fsdp": ("--training.seq-len", "64", "--training.local-batch-size", "2"),
    "tp": ("--training.seq-len", "64", "--training.local-batch-size", "2",
           "--parallelism.tensor-parallel-degree", "2"),
    "cp": ("--training.seq-len", "256", "--training.local-batch-size", "1",
           "--parallelism.context-parallel-degree", "2"),
}
LAYERS = 6
"""llama3_debugmodel's layers."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    from tests.test_dist_moe_ep import _torchtitan_assets

    root = tmp_path_factory.mktemp("titan")
    _torchtitan_assets(root)  # ./tests/assets: a tokenizer and c4_test lines (the wheel ships neither)
    return {name: phantora_run(root / name, "torchtitan.train", *COMMON, *args, ranks=2, opts=("-m",), cwd=root)
            for name, args in CONFIGS.items()}


def _kinds(run: Run, kind: str, dtype: str) -> int:
    c = run.collectives()
    return int(((c.kind == kind) & (c.dtype == dtype) & (c.ranks == 2)).sum())


@pytest.mark.slow
def test_fsdp2_gathers_bf16_parameters_and_reduce_scatters_fp32_gradients(runs):
    run = runs["fsdp"]
    assert_sensible(run, iterations=3, max_ms=1000)
    # every transformer block is an FSDP unit: gathered in forward and again in backward
    assert _kinds(run, "all_gather", "bfloat16") >= 3 * 2 * LAYERS
    assert _kinds(run, "reduce_scatter", "float32") >= 3 * LAYERS


@pytest.mark.slow
def test_tensor_parallel_sequence_parallel_collectives(runs):
    run = runs["tp"]
    assert_sensible(run, iterations=3, max_ms=1000)
    # sequence parallelism: activations all-gathered before and reduce-scattered after each TP region
    assert _kinds(run, "all_gather", "bfloat16") >= 3 * 2 * LAYERS
    assert _kinds(run, "reduce_scatter", "bfloat16") >= 3 * 2 * LAYERS
    assert _kinds(run, "reduce_scatter", "float32") == 0, "no FSDP on a tp=2 mesh of 2 ranks"


@pytest.mark.slow
def test_context_parallel_gathers_keys_and_values(runs):
    run = runs["cp"]
    assert_sensible(run, iterations=3, max_ms=1000)
    # FSDP over the (dp_shard, cp) ranks as in the fsdp run, plus the K/V all-gathers of every layer
    extra = _kinds(run, "all_gather", "bfloat16") - _kinds(runs["fsdp"], "all_gather", "bfloat16")
    assert extra >= 3 * LAYERS, extra
