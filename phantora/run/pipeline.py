"""The run pipeline of ``phantora run``, one rank or many: execute the job, write the results, print.

``summary.json`` always says how the run ended: ``complete``, or ``failed`` / ``timeout`` with the
error, the coordinator's ``failure`` kind, ``failed_rank`` and the exit code (a rank's own
``sys.exit(n)`` code, else 1). The metrics of the ranks that reported before the failure (always the
one rank of a failed one-rank script) are kept, with ``reported_ranks`` naming them. A run interrupted by a signal raises
:class:`phantora.lifecycle.Interrupted` for the caller to record.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from common.protocol import FailureKind
from phantora.launcher import LaunchFailed
from phantora.results import build_summary, failure_summary, write_json_atomic, write_results
from phantora.run.execute import execute
from phantora.run.job import RunJob
from phantora.summary import print_summary


def _say(line: str) -> None:
    print(f"phantora: {line.rstrip()}", file=sys.stderr, flush=True)


def simulate(job: RunJob, *, scenario: Any, out_dir: Path | None, as_json: bool, isolate: bool = False) -> int:
    """Run ``job``, write its results into ``out_dir`` (if given) and print its summary; returns the exit code."""
    run = {"scenario": scenario, "script": job.script, "argv": job.argv, "host_time": job.host_time}
    t0 = time.perf_counter()
    try:
        outcome = execute(job, isolate=isolate)
    except LaunchFailed as e:
        _say(str(e))
        failure = {**job.shape(), "status": "timeout" if e.kind == "timeout" else "failed",
                   "exit_code": e.exit_code, "error": str(e), "failure": e.kind, "failed_rank": e.rank}
        if out_dir is None:
            return e.exit_code
        executed = 1 if job.symmetric else job.world_size
        if e.results:  # keep the metrics of the ranks that reported, and say which they were
            write_results(out_dir, results=e.results, **run, wall_s=time.perf_counter() - t0,
                          extra={**failure, "executed_ranks": executed, "reported_ranks": sorted(e.results),
                                 "collectives": 0})
            _say(f"partial results in {out_dir}" + ("" if len(e.results) == executed else
                 f" (ranks {', '.join(map(str, sorted(e.results)))} of {executed} reported)"))
        else:
            write_json_atomic(out_dir / "summary.json", failure_summary(
                **run, wall_s=time.perf_counter() - t0, **failure))
        return e.exit_code
    extra: dict[str, Any] = {**job.shape(), "executed_ranks": len(outcome.results),
                             "collectives": len(outcome.collectives)}
    if outcome.teardown_errors:  # training finished, but a rank did not end cleanly: say so
        extra.update(status="failed", exit_code=outcome.teardown_exit_code, failure=FailureKind.TEARDOWN.value,
                     error="; ".join(outcome.teardown_errors))
    if out_dir is not None:
        summary = write_results(out_dir, results=outcome.results, **run, wall_s=outcome.wall_s,
                                collectives=outcome.collectives, extra=extra)
    else:
        summary = {**build_summary(results=outcome.results, **run, wall_s=outcome.wall_s), **extra}
    print_summary(summary, as_json=as_json, out_dir=None if out_dir is None or as_json else str(out_dir))
    for line in outcome.teardown_errors:
        _say(line)
    return outcome.teardown_exit_code if outcome.teardown_errors else 0
