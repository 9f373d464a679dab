"""``phantora conformance``: the ops a real GPU ran vs the ops the simulator ran, weighted by GPU time.

    phantora conformance --real-trace T.gz --real-profile P.jsonl --sim RESULTS_DIR [--json]
    phantora conformance --real-trace T.gz --real-profile P.jsonl --scenario S [--sim DIR] SCRIPT [ARGS...]

The real side comes from ``phantora profile --trace T.gz --out P.jsonl SCRIPT ARGS`` on a GPU; the
simulated side from a ``phantora run`` results directory (``op_trace.gz``, ``op_times.jsonl``), or is
run first (``phantora run --scenario S --out DIR SCRIPT ARGS``, its output on stderr) when SCRIPT is
given. Logic: :mod:`phantora.conformance`; docs: ``docs/conformance.md``.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import click

from phantora import conformance as cf


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--real-trace", required=True, type=click.Path(dir_okay=False),
              help="Op trace of the real run (phantora profile --trace).")
@click.option("--real-profile", "real_profiles", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Profile of the real run (phantora profile --out): GPU time per key. Repeatable; later files win.")
@click.option("--sim", "sim_dir", type=click.Path(file_okay=False), default=None,
              help="phantora run results directory (read; with SCRIPT, the run writes it). Default with SCRIPT: "
                   "runs/conformance-<script>-<timestamp>.")
@click.option("--scenario", default=None, help="With SCRIPT: the scenario to simulate (phantora run --scenario).")
@click.option("--steady", is_flag=True, help="Compare only the iterations after the first (no setup, no tail).")
@click.option("--whole", is_flag=True, help="Compare the whole runs as one multiset (no cut into iterations).")
@click.option("--top", default=25, show_default=True, type=click.IntRange(min=0), help="Divergence rows in the table.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: a summary line, then every divergence (kind, keys, count, real/sim us, share).")
@click.argument("script", required=False)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def conformance(real_trace: str, real_profiles: tuple[str, ...], sim_dir: str | None, scenario: str | None,
                steady: bool, whole: bool, top: int, as_json: bool, script: str | None,
                script_args: tuple[str, ...]) -> None:
    """Op-stream difference between a real GPU run and the simulated run of the same program."""
    if script is None and sim_dir is None:
        raise click.UsageError("give --sim RESULTS_DIR, or SCRIPT [ARGS] to simulate")
    if script is None and scenario is not None:
        raise click.UsageError("--scenario needs SCRIPT (it picks the scenario of the run this command starts)")
    if steady and whole:
        raise click.UsageError("--steady and --whole exclude each other")
    try:
        real = cf.read_trace(real_trace)
        real_dur: dict[str, float] = {}
        for p in real_profiles:
            real_dur.update(cf.read_durations(p))
    except cf.ConformanceInputError as e:
        raise click.ClickException(str(e)) from None
    if script is not None:
        sim_dir = sim_dir or str(Path("runs") / f"conformance-{Path(script).stem}-{datetime.now():%Y%m%d-%H%M%S}")
        cmd = [sys.executable, "-m", "phantora", "run", "--out", sim_dir, "--overwrite"]
        cmd += ["--scenario", scenario] if scenario else []
        click.echo(f"simulating: {' '.join([*cmd[1:], script, *script_args])}", err=True)
        code = subprocess.call([*cmd, script, *script_args], stdout=sys.stderr)
        if code != 0:
            raise click.ClickException(f"the simulated run failed (exit {code}); see {sim_dir}/summary.json")
    assert sim_dir is not None
    try:
        sim, sim_dur = cf.read_sim(sim_dir)
    except cf.ConformanceInputError as e:
        raise click.ClickException(str(e)) from None
    rep = cf.compare(real, real_dur, sim, sim_dur, steady=steady, align=not whole)
    if as_json:
        for line in rep.to_json_lines():
            click.echo(line)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"phantora conformance: {Path(real_trace).name} vs {sim_dir}", title_justify="left")
    for c in cf.TABLE_COLUMNS:
        t.add_column(c, justify="right" if c in ("% real", "ops", "real us", "sim us") else "left",
                     overflow="fold")
    for row in cf.table_rows(rep, top):
        t.add_row(*row)
    con = Console(width=None if sys.stdout.isatty() else 200)
    if rep.rows:
        con.print(t)
    else:
        con.print(f"phantora conformance: {Path(real_trace).name} vs {sim_dir}: no divergences", highlight=False)
    if len(rep.rows) > top:
        con.print(f"({len(rep.rows) - top} more divergences; --top N or --json for all)")
    con.print(cf.summary_line(rep), highlight=False)
    for n in rep.notes:
        con.print(f"note: {n}", highlight=False)
