"""Run a :class:`~phantora.run.job.RunJob`: fork its ranks, coordinate them, gather their results.

Ranks are forked from the calling process only with ``isolate=False`` (the CLI, which has run no
autograd: autograd's worker threads do not survive a fork). By default the launch runs in a freshly
spawned process, so tests and notebooks can call :func:`execute` safely.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.protocol import FailureKind
from phantora.coordinator import CollectiveRow, CoordinatorError
from phantora.launcher import LaunchFailed, launch
from phantora.results.figures import slowest_iteration_ms
from phantora.run.job import RunJob, prewarm, prewarm_host_bench
from phantora.run.ranks import interposed


@dataclass
class Outcome:
    """What a finished launch produced (the figures come from :mod:`phantora.results.figures`)."""

    results: dict[int, Any]
    """Rank → :class:`interpose.RankResult`."""
    collectives: list[CollectiveRow]
    wall_s: float
    teardown_errors: list[str] = field(default_factory=list)
    """Ranks that reported their result but then did not exit cleanly (the run counts as failed)."""
    teardown_exit_code: int = 0

    def iteration_ms(self) -> list[float]:
        """Simulated ms of each iteration (the slowest rank's), unrounded."""
        return slowest_iteration_ms(self.results)


def execute(job: RunJob, on_start: Callable[[list[int]], None] | None = None, isolate: bool = True) -> Outcome:
    """Fork the job's ranks under the shim, coordinate them, and gather their results.

    Raises :class:`~phantora.launcher.LaunchFailed` on a failed rank, mismatch, deadlock or
    ``job.timeout_s`` (its ``results``: what the finished ranks reported).
    """
    if isolate and on_start is None:
        return _execute_in_fresh_process(job)
    prewarm()
    if job.host_time == "measured":
        prewarm_host_bench()
    t0 = time.perf_counter()
    res = launch(job.launch_spec(), interposed(job), job.network, on_start=on_start, timeout_s=job.timeout_s)
    wall = time.perf_counter() - t0
    teardown = res.teardown_errors()
    codes = [c for c in res.exit_codes.values() if c]
    return Outcome(dict(sorted(res.results.items())), res.collectives, wall, teardown_errors=teardown,
                   teardown_exit_code=next((c for c in codes if c > 0), 1) if codes or teardown else 0)


def _fresh_driver(job: RunJob, conn: Any, parent_pid: int) -> None:
    from phantora.lifecycle import child_setup

    child_setup(parent_pid)  # its own process group (its ranks get theirs), dies with the caller
    try:
        conn.send(("ok", execute(job, isolate=False)))
    except CoordinatorError as e:
        conn.send(("error", e.kind, str(e), e.exit_code, e.rank, getattr(e, "results", {})))
    except BaseException:
        conn.send(("error", "launcher", traceback.format_exc(), 1, None, {}))
    conn.close()


def _execute_in_fresh_process(job: RunJob) -> Outcome:
    """Run the whole launch in a newly spawned (single-threaded) process and return its outcome."""
    from phantora.lifecycle import stop_processes, track

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_fresh_driver, args=(job, there, os.getpid()), name="phantora-launcher")
    p.start()
    assert p.pid is not None
    track(p.pid)
    there.close()
    try:
        reply = here.recv()
    except EOFError:
        raise CoordinatorError(FailureKind.LAUNCHER, "the launcher process died without reporting") from None
    except BaseException:
        stop_processes([p], grace_s=3.0)  # its ranks die with it (parent-death signal)
        raise
    finally:
        here.close()
    p.join(30)
    stop_processes([p], grace_s=1.0)
    if reply[0] == "ok":
        return reply[1]
    _, kind, message, exit_code, rank, results = reply
    raise LaunchFailed(CoordinatorError(kind, message, exit_code=exit_code, rank=rank), results)
