"""``phantora run [OPTIONS] SCRIPT [SCRIPT_ARGS...]``: simulate an unmodified training script.

torchrun conventions: phantora's options come before SCRIPT; everything after SCRIPT
(``--steps 5`` included) goes to the script. This module checks the inputs, claims the results
directory and records how the run ended; the run itself, one rank or many (scenario
``hosts × gpus_per_host`` or ``--nnodes/--nproc-per-node``), is :func:`phantora.run.simulate`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from common.errors import first_line
from phantora.scenario import Scenario, ScenarioError, load_scenario

LARGE_WORLD = 64
"""From this many ranks on, a run without ``--symmetric`` gets a hint (one process per rank is slow)."""


def default_out_dir(script: str, scenario_name: str, now: datetime | None = None) -> Path:
    """``runs/<script-stem>-<scenario>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{Path(script).stem}-{scenario_name}-{stamp}"
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def _fail(msg: str, code: int = 2) -> NoReturn:
    click.echo(f"phantora: {msg}", err=True)
    sys.exit(code)


DEFAULT_TIMEOUT_S = 3600.0
"""Default ``--timeout``: a run (one rank or many) still going after an hour of wall time is killed."""


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False), default=None,
              help="Scenario YAML (or a name in scenarios/). Default: scenarios/h100x1.yaml.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Results directory. Default: runs/<script>-<scenario>-<timestamp>. A non-empty directory "
                   "that is not a phantora result is refused (see --overwrite).")
@click.option("--overwrite", is_flag=True,
              help="Write into --out even if it holds files that are not phantora's (they are kept; files "
                   "with phantora's names are replaced).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary rows as JSON lines (the script's stdout then goes to stderr).")
@click.option("--host-time", type=click.Choice(["measured", "zero"]), default="zero", show_default=True,
              help="zero: only per-op launch overheads advance the host clock (deterministic; GPU-bound "
                   "estimate). measured: this machine's CPU time in the script counts too.")
@click.option("--nnodes", type=click.IntRange(min=1), default=None, help="Hosts (overrides the scenario).")
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=None,
              help="Ranks per host (overrides the scenario).")
@click.option("--symmetric", is_flag=True,
              help="Execute rank 0 only and assume every rank issues the same ops and collectives at the same "
                   "times (SPMD data/tensor/fully-sharded parallel jobs); the network still carries every "
                   "rank's traffic. Refused with an error for point-to-point ops or groups that are not "
                   "translated copies of each other.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S,
              show_default=True,
              help="Kill the run (every rank) after this many wall seconds; 0: no limit.")
@click.option("--values", "values_policy", default=None, metavar="POLICY",
              help="Value policy for what the simulator cannot know (argmax/topk/sort/multinomial on fake "
                   "data: MoE routing, decoding): balanced (default), uniform or skewed:<zipf s>; overrides "
                   "the scenario's values.policy.")
@click.option("--compile", "compile_option", type=click.Choice(["inductor", "eager"]), default="inductor",
              show_default=True,
              help="What torch.compile does: inductor simulates the compiled program (fused kernels, memory "
                   "plan, CUDA graphs); eager returns the function unchanged (its eager ops are simulated).")
@click.option("-m", "--module", "module", is_flag=True,
              help="SCRIPT is a module name, run like `python -m` / `torchrun -m` (the working directory is "
                   "on sys.path).")
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def run(scenario_path: str | None, out_dir: str | None, overwrite: bool, as_json: bool, host_time: str,
        nnodes: int | None, nproc_per_node: int | None, symmetric: bool, timeout_s: float,
        values_policy: str | None, compile_option: str, module: bool, script: str,
        script_args: tuple[str, ...]) -> None:
    """Run SCRIPT on simulated GPUs and print simulated ms/iteration and peak memory.

    Writes summary.json, ops.parquet and trace.json (Perfetto) into the results directory.
    Exit code: the script's (a rank's sys.exit(n) gives n), 1 for a failure or timeout, 2 for a usage
    or scenario error, 130 / 143 when interrupted by SIGINT / SIGTERM.
    """
    from phantora.lifecycle import Interrupted, handle_signals

    with handle_signals():  # SIGTERM/SIGINT/SIGHUP: kill every rank's process group, record, exit 128+n
        try:
            code = _main(scenario_path, out_dir, overwrite, as_json, host_time, nnodes, nproc_per_node, symmetric,
                         timeout_s or None, module, script, list(script_args), values_policy, compile_option)
        except Interrupted as e:  # before the results directory was claimed: nothing was written
            click.echo(f"phantora: interrupted by {e.name}", err=True)
            code = e.exit_code
        except Exception as e:  # a bug before the results directory was claimed: one line, never a traceback
            if os.environ.get("PHANTORA_DEBUG"):
                raise
            click.echo(f"phantora: internal error: {first_line(e, with_type=True)} (set PHANTORA_DEBUG=1 for the traceback)", err=True)
            code = 1
    sys.exit(code)


def _main(scenario_path: str | None, out_dir: str | None, overwrite: bool, as_json: bool, host_time: str,
          nnodes: int | None, nproc_per_node: int | None, symmetric: bool, timeout_s: float | None, module: bool,
          script: str, argv: list[str], values_policy: str | None = None, compile_option: str = "inductor") -> int:
    from phantora.lifecycle import Interrupted
    from phantora.results import ResultsDir, ResultsDirError, failure_summary

    _check_target(script, module)
    # everything that can be wrong with the inputs is found here, before anything is written or forked
    try:
        scenario = load_scenario(scenario_path)
        if values_policy is not None:
            scenario = _with_values_policy(scenario, values_policy)
        from phantora.run import RunJob

        job = RunJob.from_scenario(scenario, script=script, argv=argv, nnodes=nnodes, nproc_per_node=nproc_per_node,
                                   host_time=host_time, stdout_to_stderr=as_json, symmetric=symmetric,
                                   module=module, timeout_s=timeout_s, compile=compile_option)
    except ScenarioError as e:
        _fail(str(e))
    out = Path(out_dir) if out_dir else default_out_dir(script.rsplit(".", 1)[-1] if module else script,
                                                        scenario.name)
    results_dir = ResultsDir(out, overwrite=overwrite)
    try:
        results_dir.claim({"script": script, "argv": argv, "scenario": scenario.name})
    except ResultsDirError as e:
        _fail(str(e))
    t0 = time.perf_counter()

    def record_failure(status: str, exit_code: int, error: str) -> None:
        with contextlib.suppress(Exception):  # never hide the original error behind a write error
            results_dir.write_summary(failure_summary(
                status=status, exit_code=exit_code, error=error, scenario=scenario, script=script, argv=argv,
                host_time=host_time, wall_s=time.perf_counter() - t0, **job.shape()))

    try:
        from phantora.run import simulate

        world = job.world_size
        if world >= LARGE_WORLD and not symmetric:
            click.echo(f"phantora: {world} ranks means {world} rank processes on this machine; for SPMD jobs "
                       "(DDP, FSDP, tensor parallel) --symmetric runs one", err=True)
        if sys.stderr.isatty():
            ranks = f"{world} ranks, rank 0 executed" if symmetric else f"{world} rank{'s' if world > 1 else ''}"
            click.echo(f"phantora: simulating {script} on {scenario.name} ({ranks}, host time {host_time})",
                       err=True)
        return simulate(job, scenario=scenario, out_dir=out, as_json=as_json)
    except Interrupted as e:
        record_failure("interrupted", e.exit_code, f"interrupted by {e.name}")
        click.echo(f"phantora: interrupted by {e.name}; every rank was stopped (summary in {out})", err=True)
        return e.exit_code
    except KeyboardInterrupt:  # no signal handler (not the main thread): Ctrl-C all the same
        record_failure("interrupted", 130, "interrupted")
        click.echo(f"phantora: interrupted (summary in {out})", err=True)
        return 130
    except Exception as e:  # a bug or an I/O error: one line here, the traceback in summary.json
        if os.environ.get("PHANTORA_DEBUG"):
            raise
        record_failure("failed", 1, traceback.format_exc())
        click.echo(f"phantora: internal error: {first_line(e, with_type=True)} (traceback in {out / 'summary.json'})", err=True)
        return 1
    finally:
        results_dir.release()


def _with_values_policy(scenario: Scenario, policy: str) -> Scenario:
    """The scenario with ``values.policy`` replaced by ``--values`` (checked like the scenario field)."""
    from interpose.values import ValuePolicy

    try:
        ValuePolicy.parse(policy)
    except ValueError as e:
        _fail(f"--values: {e}")
    out = scenario.model_copy(update={"values": scenario.values.model_copy(update={"policy": policy})})
    out._source = scenario.source
    return out


def _check_target(script: str, module: bool) -> None:
    """One clear line for a missing script or module (as click's path check would give)."""
    if not module:
        if not Path(script).is_file():
            _fail(f"no such script file: {script!r} (use -m for a module name)")
        return
    from interpose.runner import module_file

    if module_file(script, str(Path.cwd())) is None:
        _fail(f"-m: no module named {script!r} (looked on sys.path and in {Path.cwd()})")
