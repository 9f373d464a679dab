"""phantora.sweep: study files, point expansion and validation, running, resuming, the table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from phantora.sweep import POINT_KINDS, PointKind, SweepError, load_study, point_id, run_study

HERE = Path(__file__).resolve().parent

# A stand-in for `phantora run`: reads the point's scenario, appends to a run log (so tests can
# count executions), sleeps, and writes a summary.json like `phantora run --out`.
FAKE_POINT = r"""
import json, os, sys, time, yaml
scen = yaml.safe_load(open(sys.argv[1]))
with open(os.environ["FAKE_RUN_LOG"], "a") as f:
    f.write(scen["name"] + "\n")
time.sleep(float(os.environ.get("FAKE_SLEEP_S", "0")))
if scen.get("hosts") == int(os.environ.get("FAKE_FAIL_HOSTS", "-1")):
    print("boom", file=sys.stderr); sys.exit(3)
ovs = scen["network"]["fabric"]["oversubscription"]
ms = [100.0 + 10 * scen["hosts"] * ovs + i for i in range(3)]
os.makedirs(sys.argv[2], exist_ok=True)
json.dump({"status": "complete", "iterations": 3, "iteration_ms": ms, "mean_ms_per_iter_excluding_first": sum(ms[1:]) / 2,
           "breakdown_ms_excluding_first": {"compute_ms": 100.0, "exposed_comm_ms": sum(ms[1:]) / 2 - 100.0,
                                            "idle_ms": 0.0},
           "gpu_busy_pct": 50.0, "peak_allocated_bytes": 2**20, "peak_reserved_bytes": 2**21, "wall_s": 0.1,
           "ranks": scen["hosts"] * scen["gpus_per_host"]}, open(os.path.join(sys.argv[2], "summary.json"), "w"))
"""


class FakeRunKind(PointKind):
    def argv(self, study, scenario_path, out_dir):  # pragma: no cover - command() is overridden
        return []

    def command(self, study, scenario_path, out_dir):
        return [sys.executable, "-c", FAKE_POINT, str(scenario_path), str(out_dir)]

    def rows(self, stdout, out_dir):
        return POINT_KINDS.get("run").rows(stdout, out_dir)


if "fake" not in POINT_KINDS:
    POINT_KINDS.add("fake", FakeRunKind())

BASE = """\
name: base
gpu: h100
hosts: 2
gpus_per_host: 8
network:
  transport: {name: single_path}
  fabric: {oversubscription: 1, hosts_per_leaf: 4}
"""

STUDY = """\
study:
  name: toy
  command: fake
base: base.yaml
set:
  gpus_per_host: 2
sweep:
  grid:
    network.transport.name: [single_path, uccl_multipath]
    network.fabric.oversubscription: [1, 2]
    hosts: [4, 16]
"""


def make_study(tmp_path: Path, study: str = STUDY) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    f = tmp_path / "study.yaml"
    f.write_text(study)
    return f


def sweep_error(tmp_path: Path, study: str) -> str:
    with pytest.raises(SweepError) as e:
        load_study(make_study(tmp_path, study))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_grid_expands_to_validated_points(tmp_path: Path) -> None:
    study = load_study(make_study(tmp_path))
    assert len(study.points) == 8
    assert study.swept == ["network.transport.name", "network.fabric.oversubscription", "hosts"]
    p = study.points[-1]
    assert p.overrides == {"network.transport.name": "uccl_multipath", "network.fabric.oversubscription": 2,
                           "hosts": 16}
    assert p.scenario["gpus_per_host"] == 2 and p.scenario["network"]["fabric"]["hosts_per_leaf"] == 4
    assert len({pt.id for pt in study.points}) == 8


def test_point_id_is_order_independent() -> None:
    assert point_id({"a": 1, "b": "x"}) == point_id({"b": "x", "a": 1}) != point_id({"a": 2, "b": "x"})


def test_list_form(tmp_path: Path) -> None:
    study = load_study(make_study(tmp_path, STUDY.split("sweep:")[0] + """sweep:
  list:
    - {hosts: 4}
    - {hosts: 8, network.nic.gbit: 200}
"""))
    assert [pt.overrides for pt in study.points] == [{"hosts": 4}, {"hosts": 8, "network.nic.gbit": 200}]
    assert study.swept == ["hosts", "network.nic.gbit"]


def test_unknown_swept_field_is_named(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("network.fabric.oversubscription:", "network.fabric.oversubscriptio:"))
    assert msg == "{}: sweep.grid.network.fabric.oversubscriptio: unknown field".format(tmp_path / "study.yaml")


def test_unknown_top_level_field_is_named(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("hosts: [4, 16]", "hostz: [4, 16]"))
    assert msg.endswith("study.yaml: sweep.grid.hostz: unknown field")


def test_bad_value_is_named(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("hosts: [4, 16]", "hosts: [4, 0]"))
    assert "sweep.grid.hosts:" in msg and "greater than or equal to 1" in msg


def test_empty_grid_and_empty_values(tmp_path: Path) -> None:
    assert sweep_error(tmp_path, STUDY.split("sweep:")[0] + "sweep:\n  grid: {}\n").endswith(
        "sweep.grid: empty grid (no fields to sweep)")
    assert sweep_error(tmp_path, STUDY.replace("hosts: [4, 16]", "hosts: []")).endswith(
        "sweep.grid.hosts: empty list of values")
    assert "sweep: give exactly one of 'grid' or 'list'" in sweep_error(
        tmp_path, STUDY.split("sweep:")[0] + "sweep: {}\n")


def test_conflicting_overrides(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("gpus_per_host: 2", "hosts: 2"))
    assert msg.endswith("sweep.hosts: also given in 'set' (conflicting overrides)")
    msg = sweep_error(tmp_path, STUDY.replace("    hosts: [4, 16]", "    hosts: [4, 16]\n    network.fabric: [{}]"))
    assert "sweep.grid.network.fabric: conflicts with override of 'network.fabric.oversubscription'" in msg


def test_duplicate_points_are_refused(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("hosts: [4, 16]", "hosts: [4, 4]"))
    assert "sweep.grid: the point" in msg and "appears twice" in msg


def test_unknown_study_field_and_command(tmp_path: Path) -> None:
    assert sweep_error(tmp_path, STUDY.replace("command: fake", "command: fake\n  scrpt: x.py")).endswith(
        "study.scrpt: unknown field")
    msg = sweep_error(tmp_path, STUDY.replace("command: fake", "command: train"))
    assert "study.command: unknown command 'train'; valid:" in msg and "netbench" in msg


def test_run_requires_an_existing_script(tmp_path: Path) -> None:
    msg = sweep_error(tmp_path, STUDY.replace("command: fake", "command: run\n  script: missing.py"))
    assert msg.endswith("study.script: no such file 'missing.py'")


def test_run_writes_table_and_resume_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "runs.log"
    monkeypatch.setenv("FAKE_RUN_LOG", str(log))
    monkeypatch.setenv("FAKE_FAIL_HOSTS", "16")
    study = load_study(make_study(tmp_path))
    out = tmp_path / "out"
    outcomes = run_study(study, out, workers=2)
    assert sum(o.ok for o in outcomes) == 4 and sum(not o.ok for o in outcomes) == 4
    assert "exit code 3: boom" in next(o.error for o in outcomes if not o.ok)
    df = pd.read_parquet(out / "sweep.parquet")
    assert len(df) == 8 and set(df["status"]) == {"ok", "failed"}
    ok = df[df["status"] == "ok"].set_index(["network.transport.name", "network.fabric.oversubscription"])
    # steady-state mean excludes the first iteration: (101 + 102) / 2 + 10 * hosts * ovs
    assert ok.loc[("single_path", 2), "iteration_ms"] == pytest.approx(101.5 + 80)
    assert ok.loc[("single_path", 2), "exposed_comm_ms"] == pytest.approx(1.5 + 80)
    assert (out / "points" / study.points[0].id / "scenario.yaml").is_file()
    assert len(log.read_text().splitlines()) == 8
    # resume: only the failed points run again
    monkeypatch.setenv("FAKE_FAIL_HOSTS", "-1")
    outcomes = run_study(study, out, workers=2)
    assert all(o.ok for o in outcomes) and sum(o.reused for o in outcomes) == 4
    assert len(log.read_text().splitlines()) == 12
    assert (pd.read_parquet(out / "sweep.parquet")["status"] == "ok").all()
    # a changed study (here: a fixed override, so the same point ids) makes every finished point stale
    changed = make_study(tmp_path, STUDY.replace("gpus_per_host: 2", "gpus_per_host: 4"))
    outcomes = run_study(load_study(changed), out, workers=2)
    assert all(o.ok for o in outcomes) and not any(o.reused for o in outcomes)
    assert len(log.read_text().splitlines()) == 20


RUNNER = """
import sys
sys.path.insert(0, {here!r})
import test_sweep
from phantora.sweep import load_study, run_study
from pathlib import Path
run_study(load_study(sys.argv[1]), Path(sys.argv[2]), workers=1)
"""


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_points(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    env = dict(os.environ, FAKE_RUN_LOG=str(log), FAKE_SLEEP_S="0.5")
    study_file, out = make_study(tmp_path), tmp_path / "out"
    cmd = [sys.executable, "-c", RUNNER.format(here=str(HERE)), str(study_file), str(out)]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.time() + 60
    while not list(out.glob("points/*/result.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}
    assert 1 <= len(done_before) < 8
    subprocess.run(cmd, env=env, check=True, timeout=120)
    results = list(out.glob("points/*/result.json"))
    assert len(results) == 8
    for pid, mtime in done_before.items():  # finished points were not redone
        assert (out / "points" / pid / "result.json").stat().st_mtime_ns == mtime
    names = log.read_text().splitlines()
    assert len(names) <= 8 + 1  # at most the one point killed mid-run ran twice
    df = pd.read_parquet(out / "sweep.parquet")
    assert len(df) == 8 and (df["status"] == "ok").all()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from phantora.cli import main

    study = make_study(tmp_path, STUDY.replace("hosts: [4, 16]", "hosts: []"))
    res = CliRunner().invoke(main, ["sweep", str(study)])
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [f"Error: {study}: sweep.grid.hosts: empty list of values"]


def test_cli_dry_run_lists_points(tmp_path: Path) -> None:
    from phantora.cli import main

    study = make_study(tmp_path)
    res = CliRunner().invoke(main, ["sweep", str(study), "--dry-run", "--json", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in res.output.splitlines()]
    assert len(rows) == 8 and all(Path(r["scenario"]).is_file() for r in rows)


def test_ray_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, installed or not
    from phantora.cli import main

    res = CliRunner().invoke(main, ["sweep", str(make_study(tmp_path)), "--ray", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "pip install 'ray[default]'" in res.output
