"""The figures of a run, computed once from ``{rank: RankResult}`` (one rank or many).

:func:`build_summary` is the only place that turns rank results into iteration times, the
steady-state mean, the slowest rank, GPU busy %, peak memory and the time breakdown; everything
else (the printed table, ``--json`` rows, ``phantora sweep``'s table) reads ``summary.json``.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from phantora.breakdown import covered, iteration_breakdown, merge

MODEL_SOURCES = ("profile", "family", "fitted", "roofline")
"""Timing sources of the compute-time model (exact entries, per-family sweep models, the older fit,
the roofline); copies and collectives are timed elsewhere."""
BREAKDOWN_PARTS = ("compute", "exposed_comm", "idle")
"""The parts of an iteration (``phantora.breakdown``): ``<part>_us`` per rank, ``<part>_ms`` in summaries."""


def iteration_ms(result: Any) -> list[float]:
    """Simulated milliseconds of each iteration of one rank."""
    return [(b - a) / 1e3 for a, b in getattr(result, "iterations", [])]


def slowest_iteration_ms(results: Mapping[int, Any]) -> list[float]:
    """Simulated ms of each iteration of the job: the slowest rank's, per iteration index (as many
    iterations as the rank with fewest has)."""
    per_rank = [iteration_ms(results[r]) for r in sorted(results)]
    n = min((len(m) for m in per_rank), default=0)
    return [max(m[i] for m in per_rank) for i in range(n)]


def mean_excluding_first(ms: Sequence[float]) -> float | None:
    """Mean of ``ms`` without the first (warm-up) entry; the only entry if there is one."""
    if not ms:
        return None
    rest = ms[1:] or ms
    return sum(rest) / len(rest)


def gpu_busy_pct(result: Any) -> float | None:
    """Percent of steady-state time (iterations after the first; else the whole run) in which
    some kernel runs on some stream of the rank."""
    ops = getattr(result, "ops", [])
    busy = merge((o.start_us, o.start_us + o.dur_us) for o in ops if o.source != "external")
    iters = list(getattr(result, "iterations", []))
    spans = iters[1:] or iters
    if not spans:
        end = float(getattr(result, "end_time_us", 0.0) or 0.0)
        spans = [(0.0, end)] if end > 0 else []
    total = sum(b - a for a, b in spans)
    if total <= 0:
        return None
    return 100.0 * sum(covered(busy, a, b) for a, b in spans) / total


def coverage_by_source(results: Mapping[int, Any]) -> dict[str, dict[str, float]]:
    """Ops and GPU time per timing source (``profile``/``roofline``/``copy``/``external``...), so a
    reader sees how much of the estimate came from measured kernels and how much from a model."""
    by: dict[str, dict[str, float]] = {}
    total = 0.0
    for r in results.values():
        for o in getattr(r, "ops", []):
            e = by.setdefault(o.source, {"ops": 0, "dur_us": 0.0})
            e["ops"] += 1
            e["dur_us"] += o.dur_us
            total += o.dur_us
    for e in by.values():
        e["dur_pct"] = round(100.0 * e["dur_us"] / total, 2) if total > 0 else 0.0
        e["dur_us"] = round(e["dur_us"], 3)
    return dict(sorted(by.items()))


def exact_coverage_pct(coverage: Mapping[str, Mapping[str, float]]) -> float | None:
    """Share of the compute model's GPU time that came from exact profile entries (issue 5's metric)."""
    model = sum(coverage[s]["dur_us"] for s in MODEL_SOURCES if s in coverage)
    if model <= 0:
        return None
    return round(100.0 * coverage.get("profile", {}).get("dur_us", 0.0) / model, 2)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("phantora", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def rank_breakdown(results: Mapping[int, Any]) -> list[dict[str, Any]]:
    """``breakdown.parquet``'s rows: compute / exposed communication / idle per rank and iteration."""
    rows: list[dict[str, Any]] = []
    for r in sorted(results):
        res = results[r]
        rows.extend(iteration_breakdown(r, getattr(res, "ops", []), getattr(res, "iterations", [])))
    return rows


def _iteration_kind(results: Mapping[int, Any]) -> str:
    """What delimits the iterations (``RankResult.iteration_kind``); ``mixed`` if ranks disagree."""
    kinds = {getattr(results[r], "iteration_kind", "optimizer_step") for r in results}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _per_iteration(slowest_ms: list[float], breakdown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per iteration: simulated ms (slowest rank) and each breakdown part's mean over ranks."""
    rows = []
    for i, t in enumerate(slowest_ms):
        part = [b for b in breakdown if b["iteration"] == i]
        row: dict[str, Any] = {"iteration": i, "sim_ms": round(t, 4)}
        for p in BREAKDOWN_PARTS:
            row[f"{p}_ms"] = round(float(np.mean([b[f"{p}_us"] for b in part])) / 1e3, 4) if part else 0.0
        rows.append(row)
    return rows


def build_summary(*, results: Mapping[int, Any], scenario: Any, script: str, argv: list[str],
                  host_time: str, wall_s: float) -> dict[str, Any]:
    """The content of ``summary.json``: iteration times are the slowest rank's, per iteration index;
    the steady-state figures leave the first (warm-up) iteration out."""
    ranks = sorted(results)
    slowest = slowest_iteration_ms(results)
    n = len(slowest)
    iters = [round(t, 6) for t in slowest]
    per_iteration = _per_iteration(slowest, rank_breakdown(results))
    busy = [b for b in (gpu_busy_pct(results[r]) for r in ranks) if b is not None]
    coverage = coverage_by_source(results)
    failed = [(r, int(getattr(results[r], "exit_code", 0) or 1), getattr(results[r], "error", None))
              for r in ranks if getattr(results[r], "exit_code", 0) or getattr(results[r], "error", None)]
    return {
        "scenario": scenario.model_dump() if hasattr(scenario, "model_dump") else scenario,
        "script": script,
        "argv": list(argv),
        "host_time": host_time,
        "host_model": getattr(results[ranks[0]], "host_model", None) if ranks else None,
        "ranks": len(ranks),
        "iterations": n,
        "iteration_kind": _iteration_kind(results),
        "iteration_ms": iters,
        "mean_ms_per_iter_excluding_first": mean_excluding_first(iters),
        "breakdown": per_iteration,
        "breakdown_ms_excluding_first": {f"{p}_ms": mean_excluding_first([b[f"{p}_ms"] for b in per_iteration])
                                         for p in BREAKDOWN_PARTS},
        "gpu_busy_pct": round(sum(busy) / len(busy), 3) if busy else None,
        "peak_allocated_bytes": max((getattr(results[r], "peak_allocated_bytes", 0) for r in ranks), default=0),
        "peak_reserved_bytes": max((getattr(results[r], "peak_reserved_bytes", 0) for r in ranks), default=0),
        "end_time_us": max((getattr(results[r], "end_time_us", 0.0) for r in ranks), default=0.0),
        "ops": sum(len(getattr(results[r], "ops", [])) for r in ranks),
        "syncs": sum(getattr(results[r], "syncs", 0) for r in ranks),
        "compile": getattr(results[ranks[0]], "compile", None) if ranks else None,
        "coverage": coverage,
        "exact_coverage_pct": exact_coverage_pct(coverage),
        "status": "complete" if not failed else "failed",
        "exit_code": failed[0][1] if failed else 0,
        "oom": any(getattr(results[r], "oom", False) for r in ranks),
        "error": failed[0][2] if failed else None,
        "wall_s": round(wall_s, 3),
        "versions": versions(),
    }


def failure_summary(*, status: str, exit_code: int, error: str, scenario: Any, script: str,
                    argv: list[str], host_time: str, wall_s: float, **extra: Any) -> dict[str, Any]:
    """``summary.json`` of a run that produced no results (``status``: ``failed``, ``interrupted``,
    ``timeout``): what ran, how it ended, no metrics."""
    return {
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "scenario": scenario.model_dump() if hasattr(scenario, "model_dump") else scenario,
        "script": script,
        "argv": list(argv),
        "host_time": host_time,
        "iterations": 0,
        "iteration_ms": [],
        "mean_ms_per_iter_excluding_first": None,
        "wall_s": round(wall_s, 3),
        **extra,
        "versions": versions(),
    }
