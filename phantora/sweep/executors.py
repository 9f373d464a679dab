"""Running a study's points: each as its own ``python -m phantora <command>`` subprocess writing into
``<out>/points/<id>/``, locally (``-j``) or as Ray tasks (``--ray``); finished points are reused.

Lifecycle: each point runs in its own session (process group) with a parent-death signal tied to
the sweep, so a point past ``timeout_s``, a sweep interrupted by SIGINT/SIGTERM and a sweep killed
outright all end the point's whole process tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from phantora.sweep.kinds import POINT_KINDS
from phantora.sweep.schema import SweepError
from phantora.sweep.store import (
    RESULT_FILE,
    PointOutcome,
    fingerprint,
    load_result,
    materialise,
    point_command,
    point_dir,
    sweep_lock,
    write_atomic,
    write_table,
)
from phantora.sweep.study import Study

STOP_GRACE_S = 10.0
"""A point told to stop (timeout, interrupted sweep) gets this long after SIGTERM before SIGKILL."""
_running: dict[int, subprocess.Popen] = {}
"""Points running now (pid → process), so an interrupted sweep can stop them all."""
_running_lock = threading.Lock()


def _stop_point(proc: subprocess.Popen, grace_s: float | None = None) -> None:
    """SIGTERM the point's whole process group, SIGKILL it after ``grace_s``, then reap the point."""
    from phantora.lifecycle import child_state, kill_group

    grace_s = STOP_GRACE_S if grace_s is None else grace_s
    if child_state(proc.pid)[0] == "running":
        kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while child_state(proc.pid)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    if child_state(proc.pid)[0] != "reaped":  # running or a zombie: its pid is still ours
        kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def stop_running_points(grace_s: float | None = None) -> None:
    """Stop every point this process is running (an interrupted sweep)."""
    with _running_lock:
        procs = list(_running.values())
    threads = [threading.Thread(target=_stop_point, args=(p, grace_s), daemon=True) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join((STOP_GRACE_S if grace_s is None else grace_s) + 10.0)


def run_point(argv: list[str], kind_name: str, pdir: str, pid: str, timeout_s: float) -> PointOutcome:
    """Run one point's subprocess and record its result (module-level so Ray can ship it).

    The point runs in its own session, with SIGTERM as its parent-death signal (so it ends if this
    process dies, however); past ``timeout_s`` its whole process group is stopped.
    """
    from phantora.lifecycle import track, untrack

    d = Path(pdir)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "phantora.lifecycle", "--parent", str(os.getpid()), "--", *argv]
    with open(d / "stdout.txt", "w") as so, open(d / "stderr.txt", "w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, start_new_session=True)
        with _running_lock:
            _running[proc.pid] = proc
        track(proc.pid)  # a SIGTERM/SIGINT to the sweep (phantora.lifecycle.handle_signals) stops it too
        try:
            try:
                rc: int | None = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                rc = None
                _stop_point(proc)
        except BaseException:
            _stop_point(proc)
            raise
        finally:
            untrack(proc.pid)
            with _running_lock:
                _running.pop(proc.pid, None)
    wall = time.perf_counter() - t0
    stdout = (d / "stdout.txt").read_text()
    if rc != 0:
        err_lines = [ln for ln in (d / "stderr.txt").read_text().splitlines() if ln.strip()]
        why = f"timed out after {timeout_s:g} s" if rc is None else f"exit code {rc}"
        error = f"{why}: {err_lines[-1] if err_lines else '(no error output)'}"
        write_atomic(d / "error.txt", error + "\n")
        return PointOutcome(pid, False, [], error, wall)
    try:
        rows = POINT_KINDS.get(kind_name).rows(stdout, d / "out")
    except SweepError as e:
        write_atomic(d / "error.txt", f"{e}\n")
        return PointOutcome(pid, False, [], str(e), wall)
    (d / "error.txt").unlink(missing_ok=True)
    write_atomic(d / RESULT_FILE, json.dumps({"complete": True, "point_id": pid, "wall_s": wall,
                                              "fingerprint": fingerprint(argv, d), "rows": rows},
                                             indent=1, default=str))
    return PointOutcome(pid, True, rows, None, wall)


Executor = Callable[[list[tuple[list[str], str, str, str, float]], int], Iterator[PointOutcome]]


def local_executor(jobs: list[tuple[list[str], str, str, str, float]], workers: int) -> Iterator[PointOutcome]:
    """Run points as subprocesses, ``workers`` at a time; yields outcomes as they finish."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from phantora.lifecycle import raise_if_interrupted

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = [pool.submit(run_point, *job) for job in jobs]
        try:
            pending = set(futs)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                raise_if_interrupted()  # a signal whose exception Python swallowed
                for fut in futs:  # in submission order among those done
                    if fut in done:
                        yield fut.result()
        except BaseException:
            for f in futs:
                f.cancel()
            stop_running_points()  # the pool's threads end once their points are gone
            raise


def ray_executor(address: str | None) -> Executor:
    """An executor that runs each point as a Ray task (``pip install ray``; workers need phantora).

    Trust: ``address`` is trusted completely. Each task runs the point's command line on whatever
    worker the cluster picks, and the outcome comes back through Ray's object store, which
    *unpickles* it here: anyone who controls that cluster can run code in this process and on the
    workers. Use only a cluster you (or people you trust) run; see docs/reliability.md.
    """
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise SweepError("--ray needs Ray: pip install 'ray[default]' (or run without --ray)") from None

    def run(jobs: list[tuple[list[str], str, str, str, float]], workers: int) -> Iterator[PointOutcome]:
        if not ray.is_initialized():
            ray.init(address=address)
        remote = ray.remote(run_point)
        pending = [remote.remote(*job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])

    return run


def run_study(
    study: Study,
    out: Path,
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    on_progress: Callable[[PointOutcome, int, int], None] | None = None,
) -> list[PointOutcome]:
    """Run every unfinished point of ``study`` into ``out``; write and return the outcomes.

    Finished points (a complete ``result.json`` with the same :func:`fingerprint`) are reused, not rerun. The table is written
    after every point, so an interrupted sweep still leaves a consistent partial table.
    """
    out.mkdir(parents=True, exist_ok=True)
    with sweep_lock(out):
        return _run_study_locked(study, out, workers=workers, executor=executor, on_progress=on_progress)


def _run_study_locked(study: Study, out: Path, *, workers: int | None, executor: Executor | None,
                      on_progress: Callable[[PointOutcome, int, int], None] | None) -> list[PointOutcome]:
    materialise(study, out)
    outcomes: dict[str, PointOutcome] = {}
    todo = []
    for pt in study.points:
        prev = load_result(out, pt.id)
        argv = point_command(study, out, pt)
        if prev is not None and prev.get("fingerprint") == fingerprint(argv, point_dir(out, pt.id)):
            outcomes[pt.id] = PointOutcome(pt.id, True, prev.get("rows", []), None,
                                           float(prev.get("wall_s", 0.0)), reused=True)
        else:
            todo.append((argv, study.spec.study.command,
                         str(point_dir(out, pt.id)), pt.id, study.spec.study.timeout_s))
    total = len(study.points)
    if on_progress is not None:
        for o in outcomes.values():
            on_progress(o, len(outcomes), total)
    run = executor or local_executor
    if todo:
        for o in run(todo, workers or os.cpu_count() or 1):
            outcomes[o.point_id] = o
            write_table(study, out, outcomes)
            if on_progress is not None:
                on_progress(o, len(outcomes), total)
    write_table(study, out, outcomes)
    return [outcomes[pt.id] for pt in study.points if pt.id in outcomes]


