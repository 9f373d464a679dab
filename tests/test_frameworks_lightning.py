"""PyTorch Lightning ``Trainer(accelerator="gpu", devices=2, strategy=ddp|fsdp)`` under ``phantora run``:
Lightning takes the launcher's torchrun environment for its ranks."""

from __future__ import annotations

import pytest

from tests.frameworks_util import FRAMEWORKS, assert_sensible, phantora_run

try:
    import lightning.pytorch  # noqa: F401
except ImportError:
    from tests.frameworks_util import require

    require("pytorch_lightning", " (pip install pytorch-lightning)")

SCRIPT = FRAMEWORKS / "lightning" / "train.py"
DIM = 512
PARAM_BYTES = 4 * (DIM * 4 * DIM + 4 * DIM + 16 * DIM * DIM + 4 * DIM + 4 * DIM * 10 + 10)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    return {s: phantora_run(tmp_path_factory.mktemp(s), SCRIPT, "--devices", "2", "--strategy", s, "--steps", "3",
                            ranks=2) for s in ("ddp", "fsdp")}


@pytest.mark.slow
def test_ddp_all_reduces_gradients(runs):
    run = runs["ddp"]
    assert_sensible(run, iterations=3, max_ms=200)
    assert "lightning ddp: 3 steps on 2 devices" in run.out
    c = run.collectives()
    grads = c[(c.kind == "all_reduce") & (c.dtype == "float32")]
    assert grads.bytes.sum() == pytest.approx(3 * PARAM_BYTES, rel=0.01), "every gradient once per step"
    assert "reduce_scatter" not in set(c.kind)


@pytest.mark.slow
def test_fsdp_gathers_and_reduce_scatters(runs):
    run = runs["fsdp"]
    s = assert_sensible(run, iterations=3, max_ms=200)
    assert "lightning fsdp: 3 steps on 2 devices" in run.out
    c = run.collectives()
    ag = c[(c.kind == "all_gather") & (c.dtype == "float32")]
    rs = c[(c.kind == "reduce_scatter") & (c.dtype == "float32")]
    assert len(ag) >= 3 and len(rs) == 3
    assert rs.bytes.sum() == pytest.approx(3 * PARAM_BYTES, rel=0.01)
    assert s["peak_allocated_bytes"] < runs["ddp"].summary["peak_allocated_bytes"], "sharded states take less"
