"""The summary a run prints: a rich table for people, JSON lines (``--json``) for programs.

Both come from the same rows: one per iteration, then one ``summary`` row.
"""

from __future__ import annotations

import json
from typing import Any

MIB = 2**20


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows built from ``summary.json``'s content."""
    rows: list[dict[str, Any]] = [{"row": "iteration", "iteration": i, "sim_ms": round(ms, 4)}
                                  for i, ms in enumerate(summary["iteration_ms"])]
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
    })
    return rows


def print_summary(summary: dict[str, Any], *, as_json: bool, out_dir: str | None = None) -> None:
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
            "none": "; no optimizer step and no module forward: no iterations", "mixed": "; ranks disagree"}
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

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    tot.add_row(str(s["iterations"]), fmt(s["mean_ms_per_iter_excluding_first"], ".3f"),
                fmt(s["gpu_busy_pct"], ".1f"), fmt(s["peak_allocated_mib"], ".1f"),
                fmt(s["peak_reserved_mib"], ".1f"), fmt(s["wall_s"], ".1f"))
    console = Console()
    if rows[:-1]:
        console.print(iters)
    console.print(tot)
    if out_dir:
        console.print(f"results: {out_dir}", highlight=False, soft_wrap=True)
