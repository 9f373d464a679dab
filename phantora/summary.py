"""The summary a run prints: rich tables for people, JSON lines (``--json``) for programs.

Both come from the same rows, built from ``summary.json``'s content alone (the figures are computed
once, in :func:`phantora.results.figures.build_summary`): one per iteration, then one ``summary`` row.
"""

from __future__ import annotations

import json
from typing import Any

MIB = 2**20
BREAKDOWN_KEYS = ("compute_ms", "exposed_comm_ms", "idle_ms")
RUN_SHAPE_KEYS = ("ranks", "executed_ranks", "symmetric", "collectives")
"""Summary-row fields a run's summary carries beside the figures (the simulated and executed ranks)."""


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows built from ``summary.json``'s content: iteration rows (simulated ms of the slowest rank and
    the breakdown's mean over ranks), then the summary row."""
    breakdown = {b["iteration"]: b for b in summary.get("breakdown") or []}
    rows: list[dict[str, Any]] = []
    for i, ms in enumerate(summary["iteration_ms"]):
        row = {"row": "iteration", "iteration": i, "sim_ms": round(ms, 4)}
        if i in breakdown:
            row.update({k: breakdown[i][k] for k in BREAKDOWN_KEYS})
        rows.append(row)
    mean = summary["mean_ms_per_iter_excluding_first"]
    rows.append({
        "row": "summary",
        "iterations": summary["iterations"],
        "iteration_kind": summary.get("iteration_kind", "optimizer_step"),
        "mean_ms_per_iter_excluding_first": None if mean is None else round(mean, 4),
        "gpu_busy_pct": summary["gpu_busy_pct"],
        "peak_allocated_mib": round(summary["peak_allocated_bytes"] / MIB, 1),
        "peak_reserved_mib": round(summary["peak_reserved_bytes"] / MIB, 1),
        "wall_s": summary["wall_s"],
        **{k: summary[k] for k in RUN_SHAPE_KEYS if k in summary},
    })
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_summary(summary: dict[str, Any], *, as_json: bool, out_dir: str | None = None) -> None:
    """Print the rows: JSON lines with ``as_json``, else the iteration and summary tables (and, for
    more than one rank, the per-iteration breakdown)."""
    rows = summary_rows(summary)
    if as_json:
        for r in rows:
            print(json.dumps(r), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    scen = summary["scenario"].get("name", "") if isinstance(summary["scenario"], dict) else ""
    kind = summary.get("iteration_kind", "optimizer_step")
    what = {"optimizer_step": "", "forward": "; no optimizer step: one iteration per outermost module forward",
            "none": "; no optimizer step and no module forward: no iterations", "mixed": "; ranks disagree",
            "optimizer_step_irregular": "; several optimizers stepped in no repeating pattern: one iteration per step"}
    iters = Table(title="simulated iterations",
                  caption=f"{scen}, host time {summary['host_time']}{what.get(kind, '')}")
    iters.add_column("iteration", justify="right")
    iters.add_column("sim ms", justify="right")
    for r in rows[:-1]:
        iters.add_row(str(r["iteration"]), f"{r['sim_ms']:.3f}")
    s = rows[-1]
    tot = Table(title="summary", caption=what.get(kind, "").removeprefix("; ") or None)
    for col in ("iterations", "ms/iter (excl. first)", "GPU busy %", "peak alloc MiB", "peak reserved MiB",
                "wall s"):
        tot.add_column(col, justify="right")
    tot.add_row(str(s["iterations"]), _fmt(s["mean_ms_per_iter_excluding_first"], ".3f"),
                _fmt(s["gpu_busy_pct"], ".1f"), _fmt(s["peak_allocated_mib"], ".1f"),
                _fmt(s["peak_reserved_mib"], ".1f"), _fmt(s["wall_s"], ".1f"))
    console = Console()
    if rows[:-1]:
        console.print(iters)
    console.print(tot)
    if out_dir:
        console.print(f"results: {out_dir}", highlight=False, soft_wrap=True)
    if summary.get("ranks", 1) > 1:
        console.print(_breakdown_table(summary, rows[:-1]))


def _breakdown_table(summary: dict[str, Any], iteration_rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    over = (f"rank 0 of {summary['ranks']} (symmetric run)" if summary.get("symmetric")
            else f"mean over {summary['ranks']} ranks")
    table = Table(title=f"time per iteration, {over} ({summary.get('collectives', 0)} collectives)")
    for col in ("iteration", "sim ms", "compute ms", "exposed comm ms", "idle ms"):
        table.add_column(col, justify="right")
    for b in iteration_rows:
        if "compute_ms" in b:
            table.add_row(str(b["iteration"]), f"{b['sim_ms']:.3f}", f"{b['compute_ms']:.3f}",
                          f"{b['exposed_comm_ms']:.3f}", f"{b['idle_ms']:.3f}")
    return table
