"""Multi-rank ``phantora run``: the rank bodies the launcher forks, and the run driver.

Two rank bodies: :func:`interposed_rank_main` runs the script under the interpose shim
(fake CUDA, virtual clock, streams) with the simulated NCCL backend wired to the
coordinator; :func:`plain_rank_main` runs it without the shim (CPU-only scripts, tests of
the protocol), where time only moves through collectives.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from interpose.distributed import install, uninstall
from interpose.distributed.coordinated import CoordinatedSink
from interpose.protocol import Channel
from netsim.backend import NetworkBackend
from phantora.breakdown import iteration_breakdown
from phantora.coordinator.core import CollectiveRow
from phantora.launcher import LaunchSpec, launch


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


def plain(script: str, argv: list[str]):
    return partial(plain_rank_main, script=script, argv=argv)


def interposed_rank_main(rank: int, ch: Channel, *, script: str, argv: list[str], make_cfg,
                         stdout_to_stderr: bool = False, module: bool = False) -> tuple[object, str | None]:
    """Run ``script`` under the interpose shim; collectives go to the coordinator via ``ch``.

    ``make_cfg(rank)`` builds the rank's :class:`interpose.RankConfig` (forked, so the compute
    model built in the parent is shared copy-on-write).
    """
    from interpose import run_script
    from interpose.distributed.runtime_link import RuntimeTimeline

    if stdout_to_stderr:
        sys.stdout.flush()
        os.dup2(2, 1)
    tl = RuntimeTimeline()
    sink = CoordinatedSink(rank, ch, tl)
    tl.sink = sink
    install(sink)
    prof_path = os.environ.get("PHANTORA_PROFILE_OUT")  # benchmarks: cProfile rank 0
    prof = None
    if prof_path and rank == 0:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        result = run_script(script, argv, make_cfg(rank), module=module)
    finally:
        uninstall()
        if prof is not None:
            prof.disable()
            prof.dump_stats(prof_path)
    error = getattr(result, "error", None)
    if error is None and getattr(result, "exit_code", 0) != 0:
        error = f"the script exited with code {result.exit_code}"
    return result, error


@dataclass(kw_only=True)
class MultiRankJob:
    """Everything a multi-rank simulated run needs (built from a scenario and the CLI)."""

    script: str
    argv: list[str]
    nnodes: int
    nproc_per_node: int
    gpu: object
    """:class:`profiles.gpus.GpuSpec`."""
    compute_model: object
    """:class:`profiles.compute.ComputeModel`, shared by all ranks."""
    network: NetworkBackend
    host_time: str = "zero"
    memory_limit_bytes: int | None = None
    values: object = None
    """:class:`interpose.values.ValuePolicy` of every rank (``None``: the default policy)."""
    stdout_to_stderr: bool = False
    """Send the ranks' stdout to stderr (``--json`` keeps stdout for the summary rows)."""
    symmetric: bool = False
    """Execute rank 0 only; the other ranks are assumed to do the same (``--symmetric``)."""
    module: bool = False
    """``script`` is a module name, run like ``python -m`` (``phantora run -m``)."""
    timeout_s: float | None = None
    """Wall-clock limit of the whole run (``--timeout``); past it every rank is killed."""


@dataclass
class MultiRankOutcome:
    results: dict[int, object]
    """Rank → :class:`interpose.RankResult`."""
    collectives: list[CollectiveRow]
    breakdown: list[dict]
    wall_s: float
    teardown_errors: list[str] = field(default_factory=list)
    """Ranks that reported their result but then did not exit cleanly (the run counts as failed)."""
    teardown_exit_code: int = 0

    def iteration_ms(self) -> list[float]:
        """Simulated ms of each iteration: the slowest rank's, per iteration index."""
        per_rank = [getattr(r, "iterations", []) for r in self.results.values()]
        n = min((len(it) for it in per_rank), default=0)
        return [max((it[i][1] - it[i][0]) for it in per_rank) / 1e3 for i in range(n)]

    def mean_ms_excluding_first(self) -> float | None:
        ms = self.iteration_ms()
        if len(ms) < 2:
            return ms[0] if ms else None
        return sum(ms[1:]) / (len(ms) - 1)


_WARM_MODULES = (
    "interpose.runner",
    "torch._dynamo",  # FakeTensorMode imports it on first use: ~5 s per process otherwise
    "torch.nn.parallel",
    "torch.distributed.device_mesh",
    "torch.distributed.fsdp",
    "torch.distributed.tensor",
    "torch.distributed.tensor.parallel",
    "torch.distributed.algorithms.ddp_comm_hooks",
)


def prewarm() -> None:
    """Import what every rank needs before forking, so the ranks share it instead of each paying."""
    import contextlib
    import importlib

    for name in _WARM_MODULES:
        with contextlib.suppress(ImportError):  # optional pieces of torch
            importlib.import_module(name)


def _fresh_driver(job: MultiRankJob, conn, parent_pid: int) -> None:
    from phantora.coordinator.core import CoordinatorError
    from phantora.lifecycle import child_setup

    child_setup(parent_pid)  # its own process group (its ranks get theirs), dies with the caller
    try:
        conn.send(("ok", run_multirank(job, isolate=False)))
    except CoordinatorError as e:
        conn.send(("error", e.kind, str(e), e.exit_code, e.rank))
    except BaseException:
        conn.send(("error", "launcher", traceback.format_exc(), 1, None))
    conn.close()


def _run_in_fresh_process(job: MultiRankJob) -> MultiRankOutcome:
    """Run the whole launch in a newly spawned (single-threaded) process and return its outcome."""
    import multiprocessing as mp

    from phantora.coordinator.core import CoordinatorError
    from phantora.lifecycle import stop_processes, track

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_fresh_driver, args=(job, there, os.getpid()), name="phantora-launcher")
    p.start()
    track(p.pid)
    there.close()
    try:
        reply = here.recv()
    except EOFError:
        raise CoordinatorError("launcher", "the launcher process died without reporting") from None
    except BaseException:
        stop_processes([p], grace_s=3.0)  # its ranks die with it (parent-death signal)
        raise
    finally:
        here.close()
    p.join(30)
    stop_processes([p], grace_s=1.0)
    if reply[0] == "ok":
        return reply[1]
    raise CoordinatorError(reply[1], reply[2], exit_code=reply[3], rank=reply[4])


def run_multirank(job: MultiRankJob, on_start=None, isolate: bool = True) -> MultiRankOutcome:
    """Fork the ranks under the shim, coordinate them, and gather their results.

    Ranks are forked from the calling process only with ``isolate=False`` (the CLI, which has
    run no autograd: autograd's worker threads do not survive a fork). By default the launch
    runs in a freshly spawned process, so tests and notebooks can call this safely.
    Raises :class:`~phantora.coordinator.core.CoordinatorError` on a failed rank, mismatch,
    deadlock or ``job.timeout_s``.
    """
    import time

    if isolate and on_start is None:
        return _run_in_fresh_process(job)

    from interpose import RankConfig

    world = job.nnodes * job.nproc_per_node

    def make_cfg(rank: int) -> RankConfig:
        return RankConfig(
            rank=rank, world_size=world, local_rank=rank % job.nproc_per_node,
            local_world_size=job.nproc_per_node, gpu=job.gpu, compute_model=job.compute_model,  # type: ignore[arg-type]
            memory_limit_bytes=job.memory_limit_bytes, host_time=job.host_time,  # type: ignore[arg-type]
            **({} if job.values is None else {"values": job.values}),
        )

    prewarm()
    t0 = time.perf_counter()
    body = partial(interposed_rank_main, script=job.script, argv=job.argv, make_cfg=make_cfg,
                   stdout_to_stderr=job.stdout_to_stderr, module=job.module)
    res = launch(LaunchSpec(job.nnodes, job.nproc_per_node, symmetric=job.symmetric), body, job.network,
                 on_start=on_start, timeout_s=job.timeout_s)
    wall = time.perf_counter() - t0
    rows: list[dict] = []
    for r in sorted(res.results):
        rr = res.results[r]
        rows.extend(iteration_breakdown(r, getattr(rr, "ops", []), getattr(rr, "iterations", [])))
    codes = [c for c in res.exit_codes.values() if c]
    return MultiRankOutcome(dict(sorted(res.results.items())), res.collectives, rows, wall,
                            teardown_errors=res.teardown_errors(),
                            teardown_exit_code=next((c for c in codes if c > 0), 1) if codes or res.teardown_errors()
                            else 0)


def write_tables(out_dir: Path, outcome: MultiRankOutcome) -> list[Path]:
    """``collectives.parquet`` (one row per collective) and ``breakdown.parquet`` (per rank and iteration)."""
    from dataclasses import asdict

    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    coll = pd.DataFrame([asdict(c) for c in outcome.collectives],
                        columns=list(CollectiveRow.__dataclass_fields__))
    bd = pd.DataFrame(outcome.breakdown, columns=["rank", "iteration", "start_us", "end_us", "dur_us",
                                                  "compute_us", "exposed_comm_us", "idle_us"])
    from phantora.results import atomic_path

    paths = [out_dir / "collectives.parquet", out_dir / "breakdown.parquet"]
    for path, df in zip(paths, (coll, bd), strict=True):
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
    return paths


def summary_rows(outcome: MultiRankOutcome) -> list[dict]:
    """One row per iteration: simulated ms (slowest rank) and the mean breakdown over ranks."""
    import pandas as pd

    ms = outcome.iteration_ms()
    bd = pd.DataFrame(outcome.breakdown)
    rows = []
    for i, t in enumerate(ms):
        part = bd[bd["iteration"] == i] if len(bd) else bd
        row: dict = {"iteration": i, "sim_ms": round(t, 4)}
        for col in ("compute", "exposed_comm", "idle"):
            row[f"{col}_ms"] = round(float(part[f"{col}_us"].mean()) / 1e3, 4) if len(part) else 0.0
        rows.append(row)
    return rows


def print_summary(summary: dict, outcome: MultiRankOutcome, as_json: bool, out_dir: str | None = None) -> None:
    """The one-rank summary (``phantora.summary``) plus the per-iteration breakdown: with ``as_json``,
    iteration rows gain ``compute_ms``/``exposed_comm_ms``/``idle_ms`` and the summary row ``ranks``
    and ``collectives``; otherwise a second table shows the breakdown."""
    import json

    from phantora import summary as one_rank

    rows = one_rank.summary_rows(summary)
    breakdown = {r["iteration"]: r for r in summary_rows(outcome)}
    if as_json:
        for r in rows:
            if r.get("row") == "iteration" and r["iteration"] in breakdown:
                b = breakdown[r["iteration"]]
                r.update({k: b[k] for k in ("compute_ms", "exposed_comm_ms", "idle_ms")})
            elif r.get("row") == "summary":
                r.update({k: summary[k] for k in ("ranks", "executed_ranks", "symmetric")})
                r["collectives"] = len(outcome.collectives)
            print(json.dumps(r), flush=True)
        return
    one_rank.print_summary(summary, as_json=False, out_dir=out_dir)
    from rich.console import Console
    from rich.table import Table

    over = (f"rank 0 of {summary['ranks']} (symmetric run)" if summary.get("symmetric")
            else f"mean over {summary['ranks']} ranks")
    table = Table(title=f"time per iteration, {over} ({len(outcome.collectives)} collectives)")
    for col in ("iteration", "sim ms", "compute ms", "exposed comm ms", "idle ms"):
        table.add_column(col, justify="right")
    for b in breakdown.values():
        table.add_row(str(b["iteration"]), f"{b['sim_ms']:.3f}", f"{b['compute_ms']:.3f}",
                      f"{b['exposed_comm_ms']:.3f}", f"{b['idle_ms']:.3f}")
    Console().print(table)


def network_timer_for(scenario, gpus_per_host: int, hosts: int | None = None) -> NetworkBackend:
    """The scenario's network on netsim (its ``network.backend``). A network netsim cannot build is a
    :class:`~phantora.scenario.ScenarioError` naming the file and field, never a silent swap to another
    model."""
    from phantora.scenario import network_backend

    return network_backend(scenario, hosts or int(getattr(scenario, "hosts", 1)), gpus_per_host)


def run_from_cli(*, script: str, argv: list[str], scenario, nnodes: int | None, nproc_per_node: int | None,
                 out_dir: Path | None, as_json: bool, host_time: str = "zero", isolate: bool = False,
                 symmetric: bool = False, module: bool = False, timeout_s: float | None = None,
                 compute_model=None) -> int:
    """What ``phantora run`` does for more than one rank; returns the exit code.

    ``scenario`` is a loaded :class:`phantora.scenario.Scenario` (fields ``gpu``, ``hosts``,
    ``gpus_per_host``, ``compute``, ``memory_limit_gib``, ``network``); ``--nnodes`` /
    ``--nproc-per-node`` override its shape. A bad network or compute model raises
    :class:`~phantora.scenario.ScenarioError` before any rank starts. With ``out_dir``, its
    ``summary.json`` always says how the run ended: ``complete``, or ``failed`` / ``timeout`` with
    the error and exit code (a rank's own ``sys.exit(n)`` code, else 1); a run interrupted by a
    signal raises :class:`phantora.lifecycle.Interrupted` for the caller to record.
    """
    import time

    from phantora.coordinator.core import CoordinatorError
    from profiles import build_compute_model, get_gpu

    gpu = get_gpu(str(scenario.gpu))
    nn = nnodes or int(getattr(scenario, "hosts", 1))
    npn = nproc_per_node or int(getattr(scenario, "gpus_per_host", 1))
    if compute_model is not None:
        pass
    elif hasattr(scenario, "build_compute_model"):
        compute_model = scenario.build_compute_model()
    else:
        compute = getattr(scenario, "compute", None)
        compute_model = build_compute_model(getattr(compute, "model", "roofline"), gpu,
                                            **dict(getattr(compute, "options", None) or {}))
    mem_gib = getattr(scenario, "memory_limit_gib", None)
    job = MultiRankJob(
        script=script, argv=list(argv), nnodes=nn, nproc_per_node=npn, gpu=gpu, compute_model=compute_model,
        network=network_timer_for(scenario, npn, nn), host_time=host_time,
        memory_limit_bytes=int(mem_gib * 2**30) if mem_gib else None, stdout_to_stderr=as_json,
        symmetric=symmetric, module=module, timeout_s=timeout_s,
        values=scenario.values.build() if hasattr(scenario, "values") else None,
    )
    from phantora.results import failure_summary, write_json_atomic, write_results

    shape = {"nnodes": nn, "nproc_per_node": npn, "world_size": nn * npn, "ranks": nn * npn,
             "symmetric": symmetric, "network_model": type(job.network).__name__}
    t0 = time.perf_counter()
    try:
        outcome = run_multirank(job, isolate=isolate)
    except CoordinatorError as e:
        print(f"phantora: {e}", file=sys.stderr)
        if out_dir is not None:
            write_json_atomic(out_dir / "summary.json", failure_summary(
                status="timeout" if e.kind == "timeout" else "failed", exit_code=e.exit_code, error=str(e),
                scenario=scenario, script=script, argv=argv, host_time=host_time,
                wall_s=time.perf_counter() - t0, failure=e.kind, failed_rank=e.rank, **shape))
        return e.exit_code
    extra = {**shape, "executed_ranks": len(outcome.results), "collectives": len(outcome.collectives),
             "breakdown": summary_rows(outcome)}
    if outcome.teardown_errors:  # training finished, but a rank did not end cleanly: say so
        extra.update(status="failed", exit_code=outcome.teardown_exit_code, failure="teardown",
                     error="; ".join(outcome.teardown_errors))
    if out_dir is not None:
        summary = write_results(out_dir, results=outcome.results, scenario=scenario, script=script, argv=argv,
                                host_time=host_time, wall_s=outcome.wall_s, extra=extra,
                                also=[lambda d: write_tables(d, outcome)])
    else:
        from phantora.results import build_summary

        summary = build_summary(results=outcome.results, scenario=scenario, script=script, argv=argv,
                                host_time=host_time, wall_s=outcome.wall_s)
        summary.update(extra)
    print_summary(summary, outcome, as_json, None if out_dir is None else str(out_dir))
    for line in outcome.teardown_errors:
        print(f"phantora: {line}", file=sys.stderr)
    failed = {r: res for r, res in outcome.results.items() if getattr(res, "exit_code", 0)}
    if failed:
        return int(next(iter(failed.values())).exit_code)
    return outcome.teardown_exit_code if outcome.teardown_errors else 0
