"""``phantora report RESULTS_DIR``: PNG/SVG plots of a sweep folder or of one run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the plots go (default: RESULTS_DIR/plots).")
@click.option("--format", "formats", default="png,svg", show_default=True,
              help="Comma-separated image formats.")
@click.option("--point", "point", default=None, help="Sweep point id for the per-run plots (default: the first).")
@click.option("--link-bytes", type=click.IntRange(min=1), default=256 * 2**20, show_default=True,
              help="Size of the all-reduce replayed for the link-utilisation heat map.")
@click.option("--no-links", is_flag=True, help="Skip the link-utilisation heat map (it replays a collective).")
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON lines.")
def report(results_dir: Path, out_dir: Path | None, formats: str, point: str | None, link_bytes: int,
           no_links: bool, as_json: bool) -> None:
    """Plot RESULTS_DIR: a `phantora sweep` folder (sweep.parquet) or a `phantora run` folder."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from phantora import plots

    out = out_dir or results_dir / "plots"
    fmts = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in ("png", "svg", "pdf")]
    if bad or not fmts:
        raise click.ClickException(f"--format: unknown format {bad[0] if bad else formats!r}; valid: png, svg, pdf")
    written: list[dict[str, Any]] = []

    def save(fig, stem: str, what: str) -> None:
        for p in plots.save(fig, out, stem, fmts):
            written.append({"plot": what, "file": str(p)})

    if (results_dir / "sweep.parquet").is_file():
        _sweep_plots(results_dir, point, link_bytes, no_links, save)
    elif (results_dir / "breakdown.parquet").is_file():
        _run_plots(results_dir, _scenario_near(results_dir), link_bytes, no_links, save)
    else:
        raise click.ClickException(f"{results_dir}: neither sweep.parquet nor breakdown.parquet found "
                                   "(give a `phantora sweep` or a `phantora run` results folder)")
    if as_json:
        for w in written:
            click.echo(json.dumps(w))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"plots written to {out}")
    table.add_column("plot")
    table.add_column("file")
    for w in written:
        table.add_row(w["plot"], w["file"])
    Console(width=max(Console().width, 120)).print(table)  # piped output is 80 wide otherwise


def _scenario_near(run_dir: Path) -> dict | None:
    import yaml

    for cand in (run_dir / "scenario.yaml", run_dir.parent / "scenario.yaml"):
        if cand.is_file():
            return yaml.safe_load(cand.read_text())
    return None


def _run_plots(run_dir: Path, scenario: dict | None, link_bytes: int, no_links: bool, save, prefix: str = "") -> None:
    from phantora import plots

    tables = plots.load_run(run_dir)
    save(plots.plot_run_breakdown(tables["breakdown"]), f"{prefix}breakdown_per_iteration",
         "iteration breakdown per iteration")
    save(plots.plot_rank_timeline(tables), f"{prefix}rank_timeline", "per-rank timeline of the last iteration")
    if scenario is not None and not no_links and scenario.get("network") is not None:
        _link_plot(scenario, link_bytes, save, f"{prefix}link_utilisation")


def _link_plot(scenario: dict, link_bytes: int, save, stem: str) -> None:
    from phantora import plots

    util, dur_us = plots.link_utilisation(scenario, "all_reduce", link_bytes)
    transport = (scenario.get("network") or {}).get("transport", {}).get("name", "single_path")
    title = (f"Link utilisation: one {plots._fmt_bytes(link_bytes)} all-reduce, {scenario.get('hosts')} hosts × "
             f"{scenario.get('gpus_per_host')} GPUs, {transport}")
    save(plots.plot_link_heatmap(util, dur_us, title), stem, "link utilisation heat map")


def _sweep_plots(folder: Path, point: str | None, link_bytes: int, no_links: bool, save) -> None:
    import yaml

    from phantora import plots

    df, swept, command = plots.load_sweep(folder)
    ok = df[df["status"] == "ok"] if "status" in df else df
    if ok.empty:
        raise click.ClickException(f"{folder}: no finished points in sweep.parquet")
    transport = next((c for c in swept if c.endswith("transport.name")), None)
    if command == "netbench":
        save(plots.plot_busbw_vs_size(ok, swept), "busbw_vs_size", "bus bandwidth vs size per transport")
    else:
        save(plots.plot_breakdown_per_point(ok, swept), "breakdown_per_point", "iteration breakdown per point")
        numeric = [c for c in swept if c != transport and plots.pd.api.types.is_numeric_dtype(ok[c])]
        x = "hosts" if "hosts" in swept else (numeric[0] if numeric else None)
        if x is not None and "iteration_ms" in ok:
            save(plots.plot_metric_vs(ok, swept, "iteration_ms", x, transport), f"iteration_ms_vs_{plots.short(x)}",
                 f"iteration time vs {plots.short(x)}")
            if transport is not None and "single_path" in set(ok[transport]) and ok[transport].nunique() > 1:
                sp = plots.speedup(ok, swept, "iteration_ms", transport, "single_path")
                rest = [c for c in swept if c != transport]
                hue = next((c for c in rest if c != x), None)
                save(plots.plot_metric_vs(sp, [*rest, transport], "speedup", x, hue if hue else transport),
                     f"speedup_vs_{plots.short(x)}", f"speed-up over single_path vs {plots.short(x)}")
    pid = point or str(ok.iloc[0]["point_id"])
    pdir = folder / "points" / pid
    if not pdir.is_dir():
        raise click.ClickException(f"--point: no point {pid!r} in {folder}/points")
    if (pdir / "out" / "breakdown.parquet").is_file():
        _run_plots(pdir / "out", None, link_bytes, True, save, prefix=f"point-{pid}-")
    if no_links:
        return
    # One heat map per transport, all at the same settings: the smallest point whose hosts span
    # more than one leaf (within one leaf no byte reaches a spine, so transports look alike).
    rows = ok.drop_duplicates(subset="point_id").sort_values([c for c in swept if c != transport] or ["point_id"])
    scenarios = {pid: yaml.safe_load((folder / "points" / pid / "scenario.yaml").read_text())
                 for pid in rows["point_id"].astype(str)}
    rows = rows[[scenarios[str(p)].get("network") is not None for p in rows["point_id"]]]
    if rows.empty:
        return
    spans = [_spans_leaves(scenarios[str(p)]) for p in rows["point_id"]]
    first = rows[spans].iloc[0] if any(spans) else rows.iloc[0]
    others = [c for c in swept if c != transport]
    same = rows[(rows[others] == first[others]).all(axis=1)] if others else rows
    for _, row in same.iterrows():
        tag = str(row[transport]) if transport else str(row["point_id"])
        _link_plot(scenarios[str(row["point_id"])], link_bytes, save, f"link_utilisation-{tag}")


def _spans_leaves(scenario: dict) -> bool:
    fabric = (scenario.get("network") or {}).get("fabric") or {}
    return int(scenario.get("hosts", 1)) > int(fabric.get("hosts_per_leaf", 4))
