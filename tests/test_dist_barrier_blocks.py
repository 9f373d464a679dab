"""``dist.barrier()`` blocks the host until every rank arrived, as ``WorkNCCL::wait`` does for a
barrier: the other ranks of the shim returned from it at once and read a file rank 0 had not
written yet."""

from __future__ import annotations


def test_barrier_orders_real_file_system_work_across_ranks(repo_root, tmp_path):
    from phantora.run.job import RunJob
    from phantora.run.pipeline import simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 3})
    path = tmp_path / "prepared"
    script = str(repo_root / "tests/data/multirank/barrier_orders_files.py")
    j = RunJob.from_scenario(scenario, script=script, argv=[str(path)])
    assert simulate(j, scenario=scenario, out_dir=None, as_json=True, isolate=True) == 0
    seen = {r: (tmp_path / f"prepared.seen{r}").read_text() for r in range(3)}
    assert seen == {0: "True", 1: "True", 2: "True"}
