"""Issue 15, process lifecycle: ranks die with their parent, every run has a timeout, exit codes
propagate. Each test starts a real ``python -m phantora run`` (2 ranks, or 1) in its own session,
learns every rank's pid from files the ranks write, does something a job scheduler does to the
parent, and checks by pid that nothing of the run is left. A ``finally`` kills whatever a failing
test would otherwise leave behind, so no test leaves a process.
"""

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

REPO = Path(__file__).resolve().parent.parent

# Every rank writes its pid; rank 0 starts a grandchild (`sleep`, in the rank's process group);
# then rank 1 spins at 100% CPU (MODE=spin) or exits with EXIT_CODE, while rank 0 waits forever
# in an all-reduce rank 1 never joins.
RANKS = textwrap.dedent("""
    import os, subprocess, sys, time
    import torch, torch.distributed as dist
    dist.init_process_group("nccl")
    r = dist.get_rank()
    d = os.environ["PIDDIR"]
    if r == 0:
        child = subprocess.Popen(["sleep", "300"])
        open(os.path.join(d, "grandchild.pid"), "w").write(str(child.pid))
    open(os.path.join(d, f"rank{r}.pid.tmp"), "w").write(str(os.getpid()))
    os.replace(os.path.join(d, f"rank{r}.pid.tmp"), os.path.join(d, f"rank{r}.pid"))
    x = torch.ones(1024, device="cuda")
    dist.all_reduce(x)
    if r == 1:
        if os.environ.get("MODE") == "spin":
            while True:
                pass
        sys.exit(int(os.environ.get("EXIT_CODE", "0")))
    dist.all_reduce(x)
""")

ONE_RANK = textwrap.dedent("""
    import os, time
    open(os.path.join(os.environ["PIDDIR"], "rank0.pid"), "w").write(str(os.getpid()))
    while True:
        time.sleep(0.1)
""")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: it runs nothing and is reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_for(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class Run:
    """A ``phantora run`` subprocess in its own session, with the pids its ranks report."""

    def __init__(self, tmp: Path, script: str, *args: str, world: int = 2, env: dict | None = None) -> None:
        self.piddir = tmp / "pids"
        self.piddir.mkdir()
        self.out = tmp / "out"
        path = tmp / "ranks.py"
        path.write_text(script)
        scenario = ["--scenario", "scenarios/h200x2.yaml"] if world == 2 else []
        cmd = [sys.executable, "-m", "phantora", "run", *scenario, "--out", str(self.out), *args, str(path)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PIDDIR": str(self.piddir), **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.names = [f"rank{r}.pid" for r in range(world)]

    def pids(self) -> list[int]:
        return [int((self.piddir / f).read_text()) for f in sorted(os.listdir(self.piddir)) if f.endswith(".pid")]

    def wait_started(self, extra: tuple[str, ...] = ()) -> list[int]:
        names = [*self.names, *extra]
        ok = wait_for(lambda: all((self.piddir / n).exists() for n in names) or self.proc.poll() is not None, 120)
        assert ok and self.proc.poll() is None, self.finish(5)[1]
        time.sleep(0.3)  # the ranks reach their collective
        return self.pids()

    def finish(self, timeout_s: float) -> tuple[int | None, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None, "(still running)"
        return self.proc.returncode, err

    def summary(self) -> dict:
        return json.loads((self.out / "summary.json").read_text())

    def cleanup(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=10)
        for pid in self.pids():
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)


@pytest.fixture
def runs(tmp_path: Path):
    made: list[Run] = []

    def start(script: str, *args: str, **kw) -> Run:
        d = tmp_path / f"run{len(made)}"
        d.mkdir()
        r = Run(d, script, *args, **kw)
        made.append(r)
        return r

    yield start
    for r in made:
        r.cleanup()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_parent_stops_every_rank_and_its_children(runs, sig, code):
    run = runs(RANKS, env={"MODE": "spin"})
    pids = run.wait_started(extra=("grandchild.pid",))
    assert len(pids) == 3 and all(alive(p) for p in pids)
    run.proc.send_signal(sig)
    rc, err = run.finish(30)
    assert rc == code, err
    assert wait_for(lambda: not any(alive(p) for p in pids), 5), [p for p in pids if alive(p)]
    assert f"interrupted by {signal.Signals(sig).name}" in err and "Traceback" not in err
    s = run.summary()
    assert (s["status"], s["exit_code"]) == ("interrupted", code)


def test_sigkill_of_parent_kills_every_rank(runs):
    run = runs(RANKS, env={"MODE": "spin"})
    pids = run.wait_started(extra=("grandchild.pid",))
    ranks = [int((run.piddir / n).read_text()) for n in run.names]
    run.proc.kill()
    run.finish(10)
    # the ranks die by their parent-death signal; nothing could clean up after the parent
    assert wait_for(lambda: not any(alive(p) for p in ranks), 5), [p for p in ranks if alive(p)]
    # and the results directory does not pretend the run finished
    assert run.summary()["status"] == "running" and "iteration_ms" not in run.summary()
    for p in pids:  # the grandchild was in a dead rank's group (documented limit): do not leak it
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def test_sigkill_of_one_rank_parent_kills_the_rank(runs):
    run = runs(ONE_RANK, world=1)
    [pid] = run.wait_started()
    run.proc.kill()
    run.finish(10)
    assert wait_for(lambda: not alive(pid), 5)


def test_multirank_timeout_fires_and_kills_every_process(runs):
    run = runs(RANKS, "--timeout", "3", env={"MODE": "spin"})
    pids = run.wait_started(extra=("grandchild.pid",))
    t0 = time.monotonic()
    rc, err = run.finish(60)
    assert rc == 1, err
    assert time.monotonic() - t0 < 20
    assert "did not finish within 3 s (--timeout)" in err and "Traceback" not in err
    assert wait_for(lambda: not any(alive(p) for p in pids), 5)
    s = run.summary()
    assert (s["status"], s["exit_code"], s["failure"]) == ("timeout", 1, "timeout")


def test_rank_exit_code_propagates(runs):
    run = runs(RANKS, env={"EXIT_CODE": "7"})
    rc, err = run.finish(120)
    assert rc == 7, err
    assert "rank 1 failed" in err and "exited with code 7" in err
    s = run.summary()
    assert (s["status"], s["exit_code"], s["failed_rank"]) == ("failed", 7, 1)
    pids = run.pids()
    assert len(pids) == 3 and not any(alive(p) for p in pids)


def test_ranks_hold_no_coordinator_end_of_any_channel(repo_root, tmp_path):
    """Each forked rank used to inherit the coordinator's ends of its own and every earlier rank's
    socket pair (so it never saw EOF, and rank 1 held rank 0's channel)."""
    from netsim.alpha_beta import AlphaBetaNetwork
    from phantora.launcher import LaunchSpec, launch
    from phantora.run import plain

    script = tmp_path / "fds.py"
    script.write_text(textwrap.dedent(f"""
        import os
        import torch.distributed as dist
        def sockets(pid):
            out = set()
            for fd in os.listdir(f"/proc/{{pid}}/fd"):
                try:
                    link = os.readlink(f"/proc/{{pid}}/fd/{{fd}}")
                except OSError:
                    continue
                if link.startswith("socket:"):
                    out.add(link)
            return out
        dist.init_process_group("nccl")
        before = set(open(os.path.join({str(tmp_path)!r}, "before")).read().split())
        shared = (sockets(os.getpid()) & sockets(os.getppid())) - before  # the launch's own sockets
        open(os.path.join({str(tmp_path)!r}, f"shared{{dist.get_rank()}}"), "w").write(repr(sorted(shared)))
        dist.barrier()
    """))
    # sockets this (pytest) process already had are inherited by any child and are not the launch's
    fds = Path(f"/proc/{os.getpid()}/fd")
    links = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            links.add(os.readlink(fd))
    (tmp_path / "before").write_text(" ".join(x for x in links if x.startswith("socket:")))
    launch(LaunchSpec(1, 4), plain(str(script), []), AlphaBetaNetwork(gpus_per_host=4))
    for r in range(4):
        assert (tmp_path / f"shared{r}").read_text() == "[]", f"rank {r} holds a coordinator-side socket"


def test_rank_exiting_without_reporting_is_named_with_its_code(repo_root, tmp_path):
    from netsim.alpha_beta import AlphaBetaNetwork
    from phantora.coordinator import CoordinatorError
    from phantora.launcher import LaunchSpec, launch
    from phantora.run import plain

    script = tmp_path / "exit5.py"
    script.write_text("import os\nimport torch.distributed as dist\ndist.init_process_group('nccl')\n"
                      "if dist.get_rank() == 1:\n    os._exit(5)\ndist.barrier()\n")
    with pytest.raises(CoordinatorError) as e:
        launch(LaunchSpec(1, 2), plain(str(script), []), AlphaBetaNetwork(gpus_per_host=2))
    assert "rank 1 exited with code 5 without reporting" in str(e.value) and e.value.exit_code == 5


def test_rank_stuck_at_teardown_is_a_failure(repo_root, tmp_path):
    """A rank that reported its result but cannot exit (a non-daemon thread) is killed and named."""
    from netsim.alpha_beta import AlphaBetaNetwork
    from phantora.launcher import LaunchSpec, launch
    from phantora.run import plain

    script = tmp_path / "stuck.py"
    script.write_text("import threading, time\nimport torch.distributed as dist\ndist.init_process_group('nccl')\n"
                      "dist.barrier()\nif dist.get_rank() == 1:\n"
                      "    threading.Thread(target=time.sleep, args=(300,)).start()\n")
    res = launch(LaunchSpec(1, 2), plain(str(script), []), AlphaBetaNetwork(gpus_per_host=2))
    assert sorted(res.results) == [0, 1]
    [line] = res.teardown_errors()
    assert line.startswith("rank 1 reported its result but did not exit within")


def test_signal_whose_exception_python_swallowed_still_stops_the_launch(tmp_path, monkeypatch):
    """The handler raises at once, but an exception raised inside an os.fork hook (logging's, while a
    rank is forked) is printed as "Exception ignored" and lost: the soak run caught one. The
    launcher's loops check for a pending signal, so the run still stops."""
    import multiprocessing as mp

    from netsim.alpha_beta import AlphaBetaNetwork
    from phantora import lifecycle
    from phantora.launcher import LaunchSpec, launch
    from phantora.run import plain

    script = tmp_path / "hang.py"
    script.write_text("import time\nimport torch.distributed as dist\ndist.init_process_group('nccl')\n"
                      "time.sleep(300)\n")
    armed = []

    def signal_during_fork_hook() -> None:  # SIGTERM arriving while a fork hook runs, once
        if armed:
            armed.clear()
            lifecycle._on_signal(signal.SIGTERM, None)

    os.register_at_fork(after_in_parent=signal_during_fork_hook)
    printed: list = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    t0 = time.monotonic()
    with lifecycle.handle_signals():
        armed.append(True)
        with pytest.raises(lifecycle.Interrupted) as e:
            launch(LaunchSpec(1, 2), plain(str(script), []), AlphaBetaNetwork(gpus_per_host=2))
    assert not armed, "the hook ran"
    assert e.value.exit_code == 143 and time.monotonic() - t0 < 15
    assert mp.active_children() == []
    assert printed == []  # the swallowed Interrupted is not printed as a traceback
