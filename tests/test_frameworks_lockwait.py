"""A rank waiting on another's file lock (Hugging Face datasets' cache lock, TorchTitan's data loader
on 2 ranks) polls with short sleeps; each must also sleep for real, else the loop spins and the
simulated wait is hundreds of times the real one (TorchTitan's iteration 0 read ~53 s)."""

from __future__ import annotations

import time

import pytest


def test_a_lock_wait_advances_simulated_time_by_about_the_real_wait(repo_root, tmp_path):
    pytest.importorskip("filelock")
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    out = tmp_path / "waited"
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/lockwait.py"), argv=[str(out)])
    t0 = time.monotonic()
    assert simulate(j, scenario=scenario, out_dir=None, as_json=True, isolate=True) == 0
    wall = time.monotonic() - t0
    waited = float(out.read_text())
    assert 0 < waited <= wall, (waited, wall)  # spinning made it ~1000x the real wait
