"""The bodies of a rank process (:data:`phantora.launcher.RankMain`): what runs after the fork.

:func:`interposed_rank_main` runs the script under the interpose shim (fake CUDA, virtual clock,
streams) with the simulated NCCL backend: on the coordinator's channel when the job has several
ranks, on a :class:`~interpose.distributed.LocalSink` for a world of one. :func:`plain_rank_main`
runs a script without the shim (CPU-only scripts, tests of the protocol), where time only moves
through collectives.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interpose.distributed import LocalSink, install, uninstall
from interpose.distributed.coordinated import CoordinatedSink
from phantora.run import memory
from phantora.run.memory import RankGate

if TYPE_CHECKING:
    from common.protocol import Channel
    from interpose.distributed import CollectiveSink
    from phantora.launcher import RankMain
    from phantora.run.job import RunJob


def _run_as_main(script: str, argv: list[str]) -> None:
    path = Path(script).resolve()
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = old_argv, old_path


def plain_rank_main(rank: int, ch: Channel, *, script: str, argv: list[str]) -> tuple[object, str | None]:
    """Run ``script`` as ``__main__`` with only the simulated process group installed."""
    sink = CoordinatedSink(rank, ch)
    install(sink)
    try:
        _run_as_main(script, argv)
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    except BaseException:
        return None, traceback.format_exc()
    finally:
        uninstall()
    return {"rank": rank, "end_us": sink.tl.host_us()}, None


def plain(script: str, argv: list[str]) -> RankMain:
    return partial(plain_rank_main, script=script, argv=argv)


def interposed_rank_main(rank: int, ch: Channel, *, job: RunJob, gate: RankGate | None = None) -> tuple[object, str | None]:
    """Run ``job.script`` under the interpose shim as rank ``rank``; returns ``(RankResult, error)``,
    where a ``sys.exit(n)`` with ``n != 0`` is an error too. ``gate`` bounds the ranks running at once
    (:mod:`phantora.run.memory`)."""
    with memory.gated(gate, ch) as ch:
        return _interposed_rank_main(rank, ch, job)


def _interposed_rank_main(rank: int, ch: Channel, job: RunJob) -> tuple[object, str | None]:
    from interpose import run_script
    from interpose.distributed.runtime_link import RuntimeTimeline

    if job.stdout_to_stderr:
        sys.stdout.flush()
        os.dup2(2, 1)
    sink: CollectiveSink
    if job.coordinated:
        tl = RuntimeTimeline()
        sink = tl.sink = CoordinatedSink(rank, ch, tl)
    else:  # a world of one: NCCL moves nothing, every collective ends at once
        sink = LocalSink()
    install(sink)
    prof_path = os.environ.get("PHANTORA_PROFILE_OUT")  # benchmarks: cProfile rank 0
    prof = None
    if prof_path and rank == 0:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        result: Any = run_script(job.script, job.argv, job.rank_config(rank), module=job.module)
    finally:
        uninstall()
        if prof is not None:
            prof.disable()
            prof.dump_stats(str(prof_path))
    error = getattr(result, "error", None)
    if error is None and getattr(result, "exit_code", 0) != 0:
        error = f"the script exited with code {result.exit_code}"
    return result, error


def interposed(job: RunJob) -> RankMain:
    """The rank body for ``job``, made in the parent before the fork: the memory check and the gate
    shared by the ranks are made here (:mod:`phantora.run.memory`)."""
    processes = 1 if job.symmetric else job.world_size
    warning = memory.preflight(processes)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return partial(interposed_rank_main, job=job, gate=memory.RankGate.for_ranks(processes))
