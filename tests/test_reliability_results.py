"""Issue 15, the results directory: claimed before simulating, locked, never mixing two runs,
and a ``summary.json`` that always says how the run ended (failed runs included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from phantora.results import LOCK_FILE, ResultsDir, ResultsDirError

# no autograd in these scripts: the rank is forked from the pytest process (see conftest.FORK_FIRST)
OK = "import torch\nx = torch.ones(256, device='cuda')\nfor _ in range(2):\n    x = x * 2\ntorch.cuda.synchronize()\n"


def cli(*args: str):
    from phantora.commands.run import run

    return CliRunner().invoke(run, list(args), catch_exceptions=False)


def one_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def old_result(d: Path) -> None:
    """What an earlier, successful phantora run left in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({"status": "complete", "exit_code": 0, "iteration_ms": [1.0],
                                                "scenario": {"name": "old"}, "versions": {}}))
    for f in ("ops.parquet", "trace.json", "collectives.parquet", "breakdown.parquet"):
        (d / f).write_text("stale")


def test_failed_run_replaces_previous_summary_and_clears_stale_files(tmp_path):
    out = tmp_path / "o"
    old_result(out)
    (out / "notes.txt").write_text("mine")  # not phantora's: kept
    script = tmp_path / "fail.py"
    script.write_text("import sys\nsys.exit(3)\n")
    r = cli("--out", str(out), str(script))
    assert r.exit_code == 3
    s = json.loads((out / "summary.json").read_text())
    assert (s["status"], s["exit_code"]) == ("failed", 3)
    for f in ("ops.parquet", "collectives.parquet", "breakdown.parquet"):
        assert (out / f).read_bytes() != b"stale", f  # this run's (empty) tables
    assert (out / "notes.txt").read_text() == "mine"


def test_successful_run_is_marked_complete(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text(OK)
    r = cli("--out", str(tmp_path / "o"), str(script))
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (s["status"], s["exit_code"], s["error"]) == ("complete", 0, None)
    assert not [p.name for p in (tmp_path / "o").iterdir() if p.name.endswith(".tmp")]


def test_non_empty_foreign_directory_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    script = tmp_path / "ok.py"
    script.write_text(OK)
    r = cli("--out", str(out), str(script))
    assert r.exit_code == 2
    assert one_line(r.output) == (f"phantora: --out {out}: not empty and not a phantora results directory "
                                  "(holds 'thesis.tex'); use --overwrite to write into it anyway, or another --out")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "thesis.tex"]
    r = cli("--overwrite", "--out", str(out), str(script))
    assert r.exit_code == 0, r.output
    assert (out / "thesis.tex").read_text() == "precious"
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_unwritable_out_is_one_line_before_simulating(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    r = cli("--out", str(blocker / "out"), str(script))
    assert r.exit_code == 2
    assert one_line(r.output).startswith(f"phantora: --out {blocker / 'out'}: cannot create the directory")
    assert not marker.exists(), "the script must not run when the results cannot be written"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_read_only_out_is_one_line(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ResultsDirError, match="not writable"):
            ResultsDir(out).claim()
    finally:
        out.chmod(0o700)


def test_concurrent_writer_is_refused(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from phantora.results import ResultsDir
        ResultsDir(Path({str(out)!r})).claim()
        print("held", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        script = tmp_path / "ok.py"
        script.write_text(OK)
        r = cli("--out", str(out), str(script))
        assert r.exit_code == 2
        assert one_line(r.output) == (f"phantora: --out {out}: another phantora run (pid {holder.pid}) is writing "
                                      "there; wait for it or use another --out")
        assert json.loads((out / "summary.json").read_text())["pid"] == holder.pid  # untouched
    finally:
        holder.communicate("", timeout=30)
    # once the first writer is gone, the directory is free again
    ResultsDir(out).claim().release()


def test_claim_writes_a_running_summary(tmp_path):
    out = tmp_path / "o"
    old_result(out)
    d = ResultsDir(out).claim({"script": "x.py"})
    try:
        s = json.loads((out / "summary.json").read_text())
        assert (s["status"], s["pid"], s["script"]) == ("running", os.getpid(), "x.py")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "summary.json"]
    finally:
        d.release()


def test_multirank_failure_writes_summary(repo_root, tmp_path, capsys):
    """A multi-rank run that fails (here: a rank raises after the first collective) writes a
    failed summary naming the rank, the error and the exit code."""
    from phantora.run import RunJob, simulate
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2,
                                   "compute": {"model": "roofline"}})
    job = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/raises.py"), argv=[])
    code = simulate(job, scenario=scenario, out_dir=tmp_path, as_json=False, isolate=True)
    assert code == 1
    s = json.loads((tmp_path / "summary.json").read_text())
    assert (s["status"], s["exit_code"], s["failed_rank"], s["failure"]) == ("failed", 1, 1, "rank_failed")
    assert "ValueError: boom on rank 1" in s["error"]
    assert "rank 1 failed" in capsys.readouterr().err


def test_multirank_teardown_failure_after_training_is_recorded(tmp_path, capsys):
    """Training finished (results are whole), but rank 1 could not exit (a non-daemon thread): the
    tables are written, and the summary says the run failed at teardown instead of "complete"."""
    from phantora.run import RunJob, simulate
    from phantora.scenario import scenario_from_dict

    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import threading, time
        import torch, torch.distributed as dist
        dist.init_process_group("nccl")
        x = torch.ones(1024, device="cuda")
        dist.all_reduce(x)
        torch.cuda.synchronize()
        if dist.get_rank() == 1:
            threading.Thread(target=time.sleep, args=(300,)).start()
    """))
    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2,
                                   "compute": {"model": "roofline"}})
    job = RunJob.from_scenario(scenario, script=str(script), argv=[])
    code = simulate(job, scenario=scenario, out_dir=tmp_path / "o", as_json=False, isolate=True)
    assert code == 1
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (s["status"], s["failure"], s["collectives"]) == ("failed", "teardown", 1)
    assert s["error"].startswith("rank 1 reported its result but did not exit within")
    assert (tmp_path / "o" / "collectives.parquet").is_file()
    assert "rank 1 reported its result" in capsys.readouterr().err
