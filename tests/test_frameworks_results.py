"""Results are written for every run that ran (issue 20): a multi-rank run that fails after training
keeps the metrics of the ranks that reported, naming them."""

from __future__ import annotations

import json


def test_failed_run_keeps_the_reported_ranks_metrics(repo_root, tmp_path):
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/fails_after_steps.py"), argv=[])
    assert simulate(j, scenario=scenario, out_dir=tmp_path / "o", as_json=True, isolate=True) == 1
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["status"] == "failed" and s["failed_rank"] == 1
    assert s["reported_ranks"] and set(s["reported_ranks"]) <= {0, 1}
    assert s["iterations"] == 2 and s["peak_allocated_bytes"] > 0
