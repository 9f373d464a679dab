"""The files a simulated run leaves in its output directory.

* ``summary.json`` — what the run was (scenario, script, argv, versions) and what it measured
  (simulated ms per iteration, mean excluding the warm-up iteration, GPU busy %, peak memory,
  how much GPU time each timing source covered, wall seconds of the simulation);
* ``ops.parquet`` — every GPU op: rank, stream, op, shapes, dtype, start_us, dur_us, source;
* ``trace.json`` — a Chrome/Perfetto trace (``ui.perfetto.dev`` or ``chrome://tracing``): one
  process per rank, one thread per stream plus a ``host`` thread holding the iterations;
* ``missing_signatures.jsonl`` — ops the compute model had no measurement for, as input for
  ``phantora profile --kernels-only`` on a machine with that GPU;
* ``op_trace.gz`` — the lowest rank's op signature keys in call order, one a line (gzip text, the
  format of ``phantora profile --trace``), and ``op_times.jsonl`` — per key its simulated time,
  timing source and call count: the simulated side of ``phantora conformance``.

Functions take ``{rank: RankResult}`` so single- and multi-rank runs share them.

The directory can never mislead (:class:`ResultsDir`, ``docs/reliability.md``): it is claimed
before anything is simulated (created, checked writable, locked against a concurrent writer, a
non-empty directory that is not a phantora result refused unless ``--overwrite``), the previous
run's phantora files are removed, and ``summary.json`` is written at once with
``status: running``; every file is written to a temporary name and renamed, and ``summary.json``
last, with ``status`` ``complete``, ``failed``, ``interrupted`` or ``timeout`` (plus
``exit_code`` and ``error``): a failed run leaves a summary that says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from phantora.breakdown import covered, merge

OPS_COLUMNS = ["rank", "stream", "op", "shapes", "dtype", "start_us", "dur_us", "source"]
HOST_TID = 0
"""Thread id of each rank's host thread in the trace; stream ``s`` is thread ``s + 1``."""


def iteration_ms(result: Any) -> list[float]:
    """Simulated milliseconds of each iteration of one rank."""
    return [(b - a) / 1e3 for a, b in getattr(result, "iterations", [])]


def mean_excluding_first(ms: list[float]) -> float | None:
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


MODEL_SOURCES = ("profile", "fitted", "roofline")
"""Timing sources of the compute-time model; copies and collectives are timed elsewhere."""


def exact_coverage_pct(coverage: Mapping[str, Mapping[str, float]]) -> float | None:
    """Share of the compute model's GPU time that came from exact profile entries (issue 5's metric)."""
    model = sum(coverage[s]["dur_us"] for s in MODEL_SOURCES if s in coverage)
    if model <= 0:
        return None
    return round(100.0 * coverage.get("profile", {}).get("dur_us", 0.0) / model, 2)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("phantora", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _iteration_kind(results: Mapping[int, Any]) -> str:
    """What delimits the iterations (``RankResult.iteration_kind``); ``mixed`` if ranks disagree."""
    kinds = {getattr(results[r], "iteration_kind", "optimizer_step") for r in results}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def build_summary(*, results: Mapping[int, Any], scenario: Any, script: str, argv: list[str],
                  host_time: str, wall_s: float) -> dict[str, Any]:
    """The content of ``summary.json``. Multi-rank: iteration times are the slowest rank's."""
    ranks = sorted(results)
    per_rank = [iteration_ms(results[r]) for r in ranks]
    n = min((len(m) for m in per_rank), default=0)
    iters = [round(max(m[i] for m in per_rank), 6) for i in range(n)]
    busy = [b for b in (gpu_busy_pct(results[r]) for r in ranks) if b is not None]
    coverage = coverage_by_source(results)
    failed = [(r, int(getattr(results[r], "exit_code", 0) or 1), getattr(results[r], "error", None))
              for r in ranks if getattr(results[r], "exit_code", 0) or getattr(results[r], "error", None)]
    return {
        "scenario": scenario.model_dump() if hasattr(scenario, "model_dump") else scenario,
        "script": script,
        "argv": list(argv),
        "host_time": host_time,
        "ranks": len(ranks),
        "iterations": n,
        "iteration_kind": _iteration_kind(results),
        "iteration_ms": iters,
        "mean_ms_per_iter_excluding_first": mean_excluding_first(iters),
        "gpu_busy_pct": round(sum(busy) / len(busy), 3) if busy else None,
        "peak_allocated_bytes": max((getattr(results[r], "peak_allocated_bytes", 0) for r in ranks), default=0),
        "peak_reserved_bytes": max((getattr(results[r], "peak_reserved_bytes", 0) for r in ranks), default=0),
        "end_time_us": max((getattr(results[r], "end_time_us", 0.0) for r in ranks), default=0.0),
        "ops": sum(len(getattr(results[r], "ops", [])) for r in ranks),
        "syncs": sum(getattr(results[r], "syncs", 0) for r in ranks),
        "coverage": coverage,
        "exact_coverage_pct": exact_coverage_pct(coverage),
        "status": "complete" if not failed else "failed",
        "exit_code": failed[0][1] if failed else 0,
        "oom": any(getattr(results[r], "oom", False) for r in ranks),
        "error": failed[0][2] if failed else None,
        "wall_s": round(wall_s, 3),
        "versions": versions(),
    }


def ops_frame(results: Mapping[int, Any]):
    """All ranks' ops as a pandas DataFrame with :data:`OPS_COLUMNS`."""
    import pandas as pd

    rows = [(o.rank, o.stream, o.op, o.shapes, o.dtype, o.start_us, o.dur_us, o.source)
            for r in sorted(results) for o in getattr(results[r], "ops", [])]
    df = pd.DataFrame(rows, columns=OPS_COLUMNS)
    return df.astype({"rank": "int32", "stream": "int64", "op": "string", "shapes": "string",
                      "dtype": "string", "start_us": "float64", "dur_us": "float64", "source": "string"})


def trace_events(results: Mapping[int, Any]) -> list[dict[str, Any]]:
    """Chrome trace events: metadata naming processes/threads, then complete ("X") events."""
    events: list[dict[str, Any]] = []
    for rank in sorted(results):
        res = results[rank]
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": HOST_TID,
                       "args": {"name": f"rank {rank}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": HOST_TID,
                       "args": {"sort_index": rank}})
        events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": HOST_TID,
                       "args": {"name": "host"}})
        ops = getattr(res, "ops", [])
        for s in sorted({o.stream for o in ops}):
            events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": s + 1,
                           "args": {"name": f"stream {s}"}})
        for i, (a, b) in enumerate(getattr(res, "iterations", [])):
            events.append({"ph": "X", "name": f"iteration {i}", "cat": "iteration", "pid": rank,
                           "tid": HOST_TID, "ts": a, "dur": max(0.0, b - a)})
        for o in ops:
            events.append({"ph": "X", "name": o.op, "cat": o.source, "pid": rank, "tid": o.stream + 1,
                           "ts": o.start_us, "dur": o.dur_us, "args": {"shapes": o.shapes, "dtype": o.dtype}})
    return events


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed onto it when the block ends without an exception
    (removed otherwise): readers see the old file or the whole new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_missing_signatures(path: Path, results: Mapping[int, Any]) -> int:
    """All ranks' unmeasured op signatures, once each, sorted: the input of
    ``phantora profile --kernels-only`` on a machine with the GPU."""
    specs: dict[str, dict] = {}
    for r in results.values():
        for spec in getattr(r, "missing_signatures", None) or []:
            specs.setdefault(json.dumps(spec, sort_keys=True), spec)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for key in sorted(specs):
            f.write(json.dumps(specs[key], separators=(",", ":")) + "\n")
    return len(specs)


def write_op_trace(out_dir: Path, results: Mapping[int, Any]) -> int:
    """``op_trace.gz`` and ``op_times.jsonl`` of the lowest rank (see the module doc); returns the ops written."""
    import gzip
    from collections import Counter

    r = results[min(results)] if results else None
    keys = list(getattr(r, "op_keys", None) or [])
    times = getattr(r, "op_key_times", None) or {}
    with atomic_path(out_dir / "op_trace.gz") as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        if keys:
            f.write("\n".join(keys) + "\n")
    calls = Counter(keys)
    with atomic_path(out_dir / "op_times.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for key in sorted(calls):
            dur, source = times.get(key, (0.0, "none"))
            f.write(json.dumps({"key": key, "dur_us": dur, "source": source, "calls": calls[key]}) + "\n")
    return len(keys)


def write_results(out_dir: Path, *, results: Mapping[int, Any], scenario: Any, script: str,
                  argv: list[str], host_time: str, wall_s: float, extra: Mapping[str, Any] | None = None,
                  also: Iterable[Callable[[Path], Any]] = ()) -> dict[str, Any]:
    """Write ``missing_signatures.jsonl``, ``op_trace.gz``/``op_times.jsonl``, ``ops.parquet``, ``trace.json``, then each ``also(out_dir)``
    (more tables), and ``summary.json`` (with ``extra`` merged in) last; returns the summary.

    Every file is written under a temporary name and renamed, so a ``summary.json`` saying
    ``complete`` means the other files are whole and from the same run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_summary(results=results, scenario=scenario, script=script, argv=argv,
                            host_time=host_time, wall_s=wall_s)
    summary.update(extra or {})
    write_missing_signatures(out_dir / "missing_signatures.jsonl", results)
    write_op_trace(out_dir, results)
    with atomic_path(out_dir / "ops.parquet") as tmp:
        ops_frame(results).to_parquet(tmp, index=False)
    with atomic_path(out_dir / "trace.json") as tmp, open(tmp, "w") as f:
        json.dump({"traceEvents": trace_events(results), "displayTimeUnit": "ms",
                   "otherData": {"script": script, "scenario": summary["scenario"].get("name", "")
                                 if isinstance(summary["scenario"], dict) else str(scenario)}}, f)
    for write in also:
        write(out_dir)
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


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


# ----------------------------------------------------------------------------- the results directory

PHANTORA_FILES = ("summary.json", "ops.parquet", "trace.json", "missing_signatures.jsonl", "op_trace.gz", "op_times.jsonl",
                  "collectives.parquet", "breakdown.parquet")
"""Files a run writes; a new run into the same directory removes the previous run's first."""
LOCK_FILE = ".phantora.lock"
STATUSES = ("running", "complete", "failed", "interrupted", "timeout")


class ResultsDirError(Exception):
    """A results directory that cannot be used; ``str()`` is the one line to show the user."""


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in PHANTORA_FILES)


def is_phantora_result(path: Path) -> bool:
    """Whether ``path`` holds a (possibly unfinished) phantora run: a ``summary.json`` of ours."""
    try:
        data = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("status") in STATUSES or {"versions", "scenario"} <= set(data))


class ResultsDir:
    """The output directory of one run, claimed for the run's whole duration.

    :meth:`claim` (before simulating): create it, check it is writable, take an exclusive
    ``fcntl`` lock (``.phantora.lock``; a second run into the same directory is refused while the
    first holds it), refuse a non-empty directory that is not a phantora result unless
    ``overwrite``, delete the previous run's phantora files (other files are left alone), and write
    ``summary.json`` with ``status: running``. The lock is released by :meth:`release` or when the
    process ends; rank processes forked meanwhile do not hold it.
    """

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._lock: Any = None

    def claim(self, running: Mapping[str, Any] | None = None) -> ResultsDir:
        from phantora.lifecycle import LockHeld, pid_lock

        p = self.path
        where = f"--out {p}"
        if p.exists() and not p.is_dir():
            raise ResultsDirError(f"{where}: exists and is not a directory")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultsDirError(f"{where}: cannot create the directory ({e.strerror or e})") from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise ResultsDirError(f"{where}: not writable")
        try:
            lock = pid_lock(p / LOCK_FILE)
        except LockHeld as e:
            raise ResultsDirError(f"{where}: another phantora run (pid {e}) is writing there; "
                                  "wait for it or use another --out") from None
        except OSError as e:
            raise ResultsDirError(f"{where}: not writable ({e.strerror or e})") from None
        self._lock = lock
        try:
            foreign = sorted(e.name for e in p.iterdir()
                             if e.name != LOCK_FILE and e.name not in PHANTORA_FILES and not _is_tmp(e.name))
            if foreign and not self.overwrite and not is_phantora_result(p):
                shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise ResultsDirError(f"{where}: not empty and not a phantora results directory (holds {shown}); "
                                      "use --overwrite to write into it anyway, or another --out")
            for e in p.iterdir():  # the previous run's files must not mix with this run's
                if e.name in PHANTORA_FILES or _is_tmp(e.name):
                    e.unlink()
            write_json_atomic(p / "summary.json", {"status": "running", "pid": os.getpid(),
                                                   "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "command": sys.argv, **(running or {})})
        except ResultsDirError:
            self.release()
            raise
        except OSError as e:
            self.release()
            raise ResultsDirError(f"{where}: cannot write there ({e.strerror or e})") from None
        return self

    def release(self) -> None:
        from phantora.lifecycle import forget

        if self._lock is not None:
            forget(self._lock)
            self._lock.close()
            self._lock = None

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json_atomic(self.path / "summary.json", dict(summary))

    def __enter__(self) -> ResultsDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def load_summary(out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / "summary.json").read_text())


__all__ = ["OPS_COLUMNS", "ResultsDir", "ResultsDirError", "build_summary", "failure_summary", "load_summary",
           "ops_frame", "trace_events", "write_results"]
