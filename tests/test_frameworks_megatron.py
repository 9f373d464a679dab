"""Megatron-Core (its own parallel_state, GPTModel, DDP, optimizer and pipeline schedules) under
``phantora run``: tensor, data (with the distributed optimizer) and pipeline parallelism on 2 ranks,
TP x DP on 4, each issuing the collectives Megatron issues."""

from __future__ import annotations

import pytest

from tests.frameworks_util import FRAMEWORKS, assert_sensible, phantora_run, require

require("megatron.core", " (pip install megatron-core; 0.16.1 is the newest for Python 3.11)")

SCRIPT = FRAMEWORKS / "megatron" / "train.py"
MICRO, SEQ, HIDDEN, LAYERS, STEPS, MBS = 2, 128, 256, 2, 3, 2
ACT_BYTES = MICRO * SEQ * HIDDEN * 4
"""One micro-batch's activations (fp32): what a TP all-reduce or a pipeline send carries."""
VOCAB = 1024
PARAM_BYTES = 4 * (LAYERS * (12 * HIDDEN**2 + 4 * HIDDEN) + 2 * HIDDEN + (2 * VOCAB + SEQ) * HIDDEN)
"""fp32 bytes of the GPT's parameters: bias-free linears, two LayerNorms per layer and a final one,
word and position embeddings, an untied output layer."""


@pytest.mark.slow
def test_tensor_parallel_all_reduces_activations(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, "--tp", "2", ranks=2)
    assert_sensible(run, iterations=STEPS, max_ms=500)
    c = run.collectives()
    tp = c[(c.kind == "all_reduce") & (c.ranks == 2) & (c.bytes == ACT_BYTES)]
    # forward: the row-parallel attention projection and MLP output of every layer, per micro-batch
    assert len(tp) >= STEPS * MBS * LAYERS * 2, len(tp)
    assert "reduce_scatter" not in set(c.kind), "no data parallelism here"


@pytest.mark.slow
def test_data_parallel_distributed_optimizer(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, "--distributed-optimizer", ranks=2)
    assert_sensible(run, iterations=STEPS, max_ms=500)
    c = run.collectives()
    rs, ag = c[c.kind == "reduce_scatter"], c[(c.kind == "all_gather") & (c.dtype == "float32")]
    assert len(rs) == len(ag) == STEPS, "one bucket: gradients reduce-scattered, parameters all-gathered, per step"
    assert rs.bytes.iloc[0] == pytest.approx(PARAM_BYTES, rel=0.01)
    assert ag.bytes.iloc[0] == rs.bytes.iloc[0]


@pytest.mark.slow
def test_data_parallel_all_reduces_gradients(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, ranks=2)
    assert_sensible(run, iterations=STEPS, max_ms=500)
    c = run.collectives()
    grads = c[(c.kind == "all_reduce") & (c.ranks == 2)]
    assert len(grads) == STEPS and grads.bytes.iloc[0] == pytest.approx(PARAM_BYTES, rel=0.01)


@pytest.mark.slow
def test_pipeline_parallel_sends_activations(tmp_path):
    mbs = 4
    run = phantora_run(tmp_path, SCRIPT, "--pp", "2", "--micro-batches", str(mbs), ranks=2)
    assert_sensible(run, iterations=STEPS, max_ms=500)
    c = run.collectives()
    p2p = c[c.kind == "send_recv"]
    assert len(p2p) == STEPS * mbs * 2, "1F1B: an activation forward and a gradient back per micro-batch"
    assert set(p2p.bytes) == {ACT_BYTES}


@pytest.mark.slow
def test_tp2_dp2_four_ranks(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, "--tp", "2", "--distributed-optimizer", ranks=4)
    s = assert_sensible(run, iterations=STEPS, max_ms=500)
    assert s["ranks"] == 4
    c = run.collectives()
    assert len(c[(c.kind == "all_reduce") & (c.ranks == 2) & (c.bytes == ACT_BYTES)]) >= 2 * STEPS * MBS * LAYERS * 2
    assert len(c[c.kind == "reduce_scatter"]) == 2 * STEPS, "one per step in each of the 2 dp groups"
