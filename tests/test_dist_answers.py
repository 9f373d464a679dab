"""Answers programs branch on: ``dist.get_backend`` gives the backend the script asked for (``nccl``,
``gloo``, inherited by ``new_group()``), not the simulated backend's registered name; ``monitored_barrier``
runs on gloo groups and raises on nccl ones, as torch does; known integer values through ``reduce`` and
``reduce_scatter_tensor`` are the members' reduction, not the symmetric-ranks guess."""

from __future__ import annotations

import json


def _two_ranks(repo_root, tmp_path, script: str) -> list[dict]:
    """Run ``tests/data/multirank/<script>`` on 2 simulated H100s; each rank's JSON file."""
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    out = tmp_path / "seen"
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank" / script), argv=[str(out)])
    assert simulate(j, scenario=scenario, out_dir=None, as_json=True, isolate=True) == 0
    return [json.loads((tmp_path / f"seen.{r}").read_text()) for r in range(2)]


def test_backend_names_and_monitored_barrier_as_on_a_gpu_host(repo_root, tmp_path):
    for seen in _two_ranks(repo_root, tmp_path, "backend_names.py"):
        assert seen["default"] == ["nccl", "cuda:nccl"]
        assert seen["gloo"] == ["gloo", "cpu:gloo,cuda:gloo"]
        assert seen["inherited"] == "nccl"
        assert seen["monitored_nccl"] == "monitored_barrier is only implemented for GLOO backend."
        assert seen["monitored_gloo"] == "ran"


def test_reduce_and_reduce_scatter_carry_the_members_known_values(repo_root, tmp_path):
    seen = _two_ranks(repo_root, tmp_path, "reduce_values.py")
    assert seen[0]["reduce"] == [3, 30] and seen[1]["reduce"] == [2, 20]  # the root sums, the other keeps its own
    assert seen[1]["reduce_max"] == [2, 5] and seen[0]["reduce_max"] == [1, 5]
    assert seen[0]["reduce_scatter"] == [10, 12] and seen[1]["reduce_scatter"] == [14, 16]
