"""``nn.DataParallel`` (one process, several devices) under ``phantora run``: ``torch._C._scatter``,
``_gather``, ``_broadcast_coalesced`` and the ``_nccl_*`` reduce are served by the shim, replicas run on
their own devices' streams."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.frameworks_util import FRAMEWORKS, assert_sensible, phantora_run

SCRIPT = FRAMEWORKS / "dataparallel" / "train.py"


@pytest.mark.slow
def test_dataparallel_two_devices(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, "--steps", "3", env={"CUDA_VISIBLE_DEVICES": "0,1"})
    s = assert_sensible(run, iterations=3)
    assert "on 2 devices" in run.out
    ops = pd.read_parquet(run.dir / "ops.parquet")
    fwd = ops[ops.op == "aten.addmm.default"]
    assert fwd.stream.nunique() == 2, "each replica's forward on its own device's stream"
    # last step: the two replicas' forwards run side by side, not one after the other
    last = fwd.groupby("stream").start_us.max()
    assert abs(last.iloc[0] - last.iloc[1]) < 0.25 * s["mean_ms_per_iter_excluding_first"] * 1e3
    bwd = ops[ops.op == "aten.mm.default"]  # the linears' input and weight gradients
    assert set(bwd.groupby("stream").size()) == {len(bwd) // 2}, "each replica's backward on its device"
    copies = ops[ops.op == "aten._to_copy.default"]
    assert len(copies) >= 3 * 3, "per step: scatter, replicate (broadcast_coalesced), gather copies"
    assert "not compiled with NCCL" not in run.out, "torch.cuda.nccl's reduce is served"


@pytest.mark.slow
def test_dataparallel_one_device_is_the_plain_module(tmp_path):
    run = phantora_run(tmp_path, SCRIPT, "--steps", "3", env={"CUDA_VISIBLE_DEVICES": "0"})
    assert_sensible(run, iterations=3)
    assert "on 1 devices" in run.out
