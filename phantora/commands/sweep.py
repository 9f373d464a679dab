"""``phantora sweep STUDY.yaml``: run every point of a what-if study and write one table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: results/<study name>). Rerunning resumes there.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Points run at once (default: the number of CPU cores).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None,
              help="Run the points as Ray tasks (optionally give the cluster address). The cluster is trusted "
                   "completely: it runs the points' commands and its results are unpickled here.")
@click.option("--dry-run", is_flag=True, help="Validate and write every point's scenario, run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON lines.")
def sweep(study_file: Path, out_dir: Path | None, jobs: int | None, ray_address: str | None,
          dry_run: bool, as_json: bool) -> None:
    """Run every point of STUDY_FILE (a scenario sweep) and write <out>/sweep.parquet."""
    from phantora.sweep import SweepError, load_study, materialise, ray_executor, run_study

    try:
        study = load_study(study_file)
        out = out_dir or Path("results") / study.spec.study.name
        executor = ray_executor(None if ray_address == "auto" else ray_address) if ray_address else None
    except SweepError as e:
        raise click.ClickException(str(e)) from None
    if dry_run:
        materialise(study, out)
        for pt in study.points:
            row = {"point_id": pt.id, **pt.overrides, "scenario": str(out / "points" / pt.id / "scenario.yaml")}
            click.echo(json.dumps(row, default=str) if as_json else f"{pt.id}  {pt.label()}")
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    failures: list[str] = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task(study.spec.study.name, total=len(study.points))
        labels = {pt.id: pt.label() for pt in study.points}

        def progress(o, done: int, total: int) -> None:
            bar.update(task, completed=done)
            state = "reused" if o.reused else ("ok" if o.ok else "FAILED")
            msg = f"[{done}/{total}] {labels[o.point_id]}: {state}"
            if not o.reused:
                msg += f" ({o.wall_s:.1f} s)"
            if not o.ok:
                msg += f": {o.error}"
                failures.append(msg)
            console.print(msg, highlight=False)

        from phantora.lifecycle import Interrupted, handle_signals

        try:
            with handle_signals():  # SIGTERM/SIGINT/SIGHUP: stop every running point's process group
                run_study(study, out, workers=jobs, executor=executor, on_progress=progress)
        except SweepError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt as e:
            how = f" by {e.name}" if isinstance(e, Interrupted) else ""
            console.print(f"interrupted{how}; rerun the same command to resume in {out}", highlight=False)
            sys.exit(e.exit_code if isinstance(e, Interrupted) else 130)
    _print_table(out, as_json)
    console.print(f"table: {out / 'sweep.parquet'}", highlight=False)
    if failures:
        raise click.ClickException(f"{len(failures)} of {len(study.points)} points failed "
                                   f"(see {out}/points/<id>/stderr.txt)")


PREFERRED = ("size_bytes", "transport", "time_us", "busbw_gbps", "iteration_ms", "compute_ms",
             "exposed_comm_ms", "idle_ms", "ranks", "status", "point_wall_s")


def _print_table(out: Path, as_json: bool) -> None:
    import pandas as pd  # type: ignore[import-untyped]

    from phantora.compose import short_name

    df = pd.read_parquet(out / "sweep.parquet")
    if as_json:
        for rec in df.to_dict(orient="records"):
            click.echo(json.dumps(rec, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    meta = json.loads((out / "points.json").read_text()) if (out / "points.json").is_file() else {}
    swept = [c for c in meta.get("swept", []) if c in df]
    cols = ["point_id", *swept, *(c for c in PREFERRED if c in df and c not in swept)]
    table = Table(title=str(out / "sweep.parquet"))
    for c in cols:
        table.add_column(short_name(c), justify="right")
    for rec in df[cols].itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in rec))
    Console(width=max(Console().width, 15 * len(cols))).print(table)  # piped output is 80 wide otherwise
