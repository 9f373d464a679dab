"""``dist.get_backend`` answers the backend the script asked for (``nccl``, ``gloo``, inherited by
``new_group()``), not the simulated backend's registered name, and ``monitored_barrier`` runs on gloo
groups and raises on nccl ones, as torch does: programs branch on these."""

from __future__ import annotations

import json


def test_backend_names_and_monitored_barrier_as_on_a_gpu_host(repo_root, tmp_path):
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    out = tmp_path / "seen"
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/backend_names.py"),
                             argv=[str(out)])  # fmt: skip
    assert simulate(j, scenario=scenario, out_dir=None, as_json=True, isolate=True) == 0
    for r in range(2):
        seen = json.loads((tmp_path / f"seen.{r}").read_text())
        assert seen["default"] == ["nccl", "cuda:nccl"]
        assert seen["gloo"] == ["gloo", "cpu:gloo,cuda:gloo"]
        assert seen["inherited"] == "nccl"
        assert seen["monitored_nccl"] == "monitored_barrier is only implemented for GLOO backend."
        assert seen["monitored_gloo"] == "ran"
