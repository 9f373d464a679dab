"""Issue 15, sweeps: a point past its timeout loses its whole process tree, a sweep that is
interrupted or killed takes its running points with it, and two sweeps never share a folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phantora.sweep import POINT_KINDS, PointKind, SweepError, load_study, run_study

HERE = Path(__file__).resolve().parent

# A point that starts a grandchild in its own process group, records both pids, and hangs.
HANGING_POINT = textwrap.dedent("""
    import os, subprocess, sys, time, yaml
    d = os.environ["PIDDIR"]
    name = yaml.safe_load(open(sys.argv[1]))["name"].replace("/", "_")
    child = subprocess.Popen(["sleep", "300"])
    open(os.path.join(d, name + ".pids"), "w").write(f"{os.getpid()} {child.pid}")
    time.sleep(300)
""")


class HangKind(PointKind):
    def argv(self, study, scenario_path, out_dir):  # pragma: no cover - command() is overridden
        return []

    def command(self, study, scenario_path, out_dir):
        return [sys.executable, "-c", HANGING_POINT, str(scenario_path)]

    def rows(self, stdout, out_dir):  # pragma: no cover - never finishes
        return [{}]


if "hang" not in POINT_KINDS:
    POINT_KINDS.add("hang", HangKind())

STUDY = """\
study: {{name: toy, command: hang, timeout_s: {timeout}}}
set: {{gpu: h100}}
sweep:
  grid:
    hosts: [1, 2]
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_for(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def pids_in(d: Path) -> list[int]:
    return [int(x) for f in d.glob("*.pids") for x in f.read_text().split()]


@pytest.fixture
def piddir(tmp_path, monkeypatch):
    d = tmp_path / "pids"
    d.mkdir()
    monkeypatch.setenv("PIDDIR", str(d))
    yield d
    for pid in pids_in(d):  # whatever a failing test left
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def study_file(tmp_path: Path, timeout: float) -> Path:
    f = tmp_path / "study.yaml"
    f.write_text(STUDY.format(timeout=timeout))
    return f


def test_point_timeout_kills_the_points_process_group(tmp_path, piddir, monkeypatch):
    import phantora.sweep.executors as executors

    monkeypatch.setattr(executors, "STOP_GRACE_S", 1.0)
    study = load_study(study_file(tmp_path, 1.5))
    t0 = time.monotonic()
    outcomes = run_study(study, tmp_path / "out", workers=2)
    assert time.monotonic() - t0 < 30
    assert [o.ok for o in outcomes] == [False, False]
    assert all(o.error.startswith("timed out after 1.5 s") for o in outcomes)
    pids = pids_in(piddir)
    assert len(pids) == 4  # two points, each with a grandchild
    assert wait_for(lambda: not any(alive(p) for p in pids), 5), [p for p in pids if alive(p)]


RUNNER = """
import sys
sys.path.insert(0, {here!r})
import test_reliability_sweep
from pathlib import Path
from phantora.cli import main
main(["sweep", sys.argv[1], "--out", sys.argv[2], "-j", "2"])
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, -9), (signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopped_sweep_takes_its_points_with_it(tmp_path, piddir, sig, code):
    cmd = [sys.executable, "-c", RUNNER.format(here=str(HERE)), str(study_file(tmp_path, 600)), str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(pids_in(piddir)) == 4 or proc.poll() is not None, 60), proc.communicate()
        pids = pids_in(piddir)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        if sig == signal.SIGKILL:  # the points die by their parent-death signal, their own children with them
            assert wait_for(lambda: not any(alive(p) for p in pids[::2]), 5)
        else:
            assert f"interrupted by {signal.Signals(sig).name}" in err
            assert wait_for(lambda: not any(alive(p) for p in pids), 5), [p for p in pids if alive(p)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_two_sweeps_never_share_a_folder(tmp_path, piddir):
    out = tmp_path / "o"
    cmd = [sys.executable, "-c", RUNNER.format(here=str(HERE)), str(study_file(tmp_path, 600)), str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(pids_in(piddir)) == 4 or proc.poll() is not None, 60)
        with pytest.raises(SweepError, match=rf"another phantora sweep \(pid {proc.pid}\) is running there"):
            run_study(load_study(study_file(tmp_path, 600)), out, workers=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert json.loads((out / "points.json").read_text())["study"] == "toy"
