"""Collectives over values that differ by rank give every rank the real combination (relayed through
the coordinator), not the symmetric-ranks guess of N times its own (rank 0 read 2.0 for the sum of
1.0 and 2.0)."""

from __future__ import annotations

import json


def test_all_reduce_and_all_gather_combine_every_ranks_values(repo_root, tmp_path):
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 3})
    out = tmp_path / "got"
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/rank_values.py"), argv=[str(out)])
    assert simulate(j, scenario=scenario, out_dir=None, as_json=True, isolate=True) == 0
    want = {"sum": [6, 30], "max": 2, "all_done": False, "float_sum": 1.5, "gloo_sum": 6.0,
            "gathered": [0, 7, 14], "gathered_list": [0, 1, 4]}
    for r in range(3):
        assert json.loads((tmp_path / f"got.{r}").read_text()) == want, r
