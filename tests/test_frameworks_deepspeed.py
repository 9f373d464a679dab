"""DeepSpeed ZeRO-1/2/3 (``deepspeed.initialize`` on a CPU-built model) under ``phantora run``, 2 ranks:
iterations, ms/iter, memory falling with the stage, and the collectives each stage issues."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.frameworks_util import FRAMEWORKS, Run, assert_sensible, phantora_run, require

require("deepspeed", " (pip install 'deepspeed==0.19.8'; DS_BUILD_OPS=0 is its default)")

SCRIPT = FRAMEWORKS / "deepspeed" / "train.py"
MODEL = ("--d-model", "512", "--layers", "4", "--steps", "3")
PARAM_BYTES = 4 * (4 * (12 * 512 * 512 + 13 * 512) + 2 * 1024 * 512 + 1024 + 2 * 512)
"""fp32 bytes of the example's parameters at ``MODEL`` (4 blocks, embedding, head); approximate."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Run]:
    out = {}
    for stage in (1, 2, 3):
        d: Path = tmp_path_factory.mktemp(f"zero{stage}")
        out[stage] = phantora_run(d, SCRIPT, "--zero-stage", str(stage), *MODEL, ranks=2)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stage_trains(runs, stage):
    run = runs[stage]
    s = assert_sensible(run, iterations=3, max_ms=200)
    assert f"ZeRO-{stage}: 3 steps" in run.out
    assert s["ranks"] == 2
    assert 50 * 2**20 < s["peak_allocated_bytes"] < 2 * 2**30


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2])
def test_zero12_reduce_gradients_and_gather_parameters(runs, stage):
    c = runs[stage].collectives()
    grads = c[(c.kind.isin(["all_reduce", "reduce_scatter"])) & (c.dtype == "float32")]
    # each step reduces every gradient once (all ranks' rows are one row per collective)
    assert grads.bytes.sum() == pytest.approx(3 * PARAM_BYTES, rel=0.1), grads.bytes.sum()
    gathers = c[(c.kind == "all_gather") & (c.dtype == "float32")]
    assert len(gathers) >= 3, "the updated partitions are all-gathered after each step"
    assert gathers.bytes.sum() == pytest.approx(3 * PARAM_BYTES, rel=0.1)


@pytest.mark.slow
def test_zero3_gathers_parameters_and_reduce_scatters_gradients(runs):
    c = runs[3].collectives()
    gathers = c[(c.kind == "all_gather") & (c.dtype == "float32")]
    scatters = c[(c.kind == "reduce_scatter") & (c.dtype == "float32")]
    assert len(scatters) >= 3 and scatters.bytes.sum() == pytest.approx(3 * PARAM_BYTES, rel=0.1)
    # parameters are gathered for forward and again for backward, module by module
    assert len(gathers) > 4 * 3 and gathers.bytes.sum() > 1.5 * 3 * PARAM_BYTES
    assert "all_reduce" not in set(c[c.dtype == "float32"].kind), "no gradient all-reduce in ZeRO-3"


@pytest.mark.slow
def test_memory_falls_with_the_stage(runs):
    """Stage 2 shards the gradients: about half the fp32 gradients fewer than stage 1 (2 ranks). Stage 3's
    peak is not asserted below stage 2's: its gather/prefetch buffers outweigh the halved parameters of a
    model this small (on one real H200 the frameworks' ZeRO-3 config peaks 7% above ZeRO-2's, 2062 vs
    1930 MiB, docs/validation.md); the order here was once stage 1 > 2 > 3 only because the stages-1/2
    optimizer's ``zeros_like(p, device="meta")`` tensors were wrongly charged to the GPU."""
    peak = {z: r.summary["peak_allocated_bytes"] for z, r in runs.items()}
    assert peak[1] > peak[2], peak
    assert peak[1] - peak[2] == pytest.approx(PARAM_BYTES / 2, rel=0.35)
    assert peak[3] < peak[1] + PARAM_BYTES, peak  # no unsharded copy of the parameters on top
