"""The files a run leaves in its results directory, each written under a temporary name and renamed.

* ``summary.json`` (:func:`phantora.results.figures.build_summary`), written last;
* ``ops.parquet`` — every GPU op: rank, stream, op, shapes, dtype, start_us, dur_us, source;
* ``trace.json`` — a Chrome/Perfetto trace (``ui.perfetto.dev``): one process per rank, one thread
  per stream plus a ``host`` thread holding the iterations;
* ``collectives.parquet`` (one row per collective; empty for one rank) and ``breakdown.parquet``
  (compute / exposed communication / idle per rank and iteration);
* ``missing_signatures.jsonl`` — ops the compute model had no measurement for, the input of
  ``phantora profile --kernels-only`` on a machine with that GPU;
* ``op_trace.gz`` — the lowest rank's op signature keys in call order (the format of ``phantora
  profile --trace``) and ``op_times.jsonl`` — per key its simulated time, timing source and call
  count: the simulated side of ``phantora conformance``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from phantora.results.figures import build_summary, rank_breakdown

OPS_COLUMNS = ["rank", "stream", "op", "shapes", "dtype", "start_us", "dur_us", "source"]
HOST_TID = 0
"""Thread id of each rank's host thread in the trace; stream ``s`` is thread ``s + 1``."""


def ops_frame(results: Mapping[int, Any]):
    """All ranks' ops as a pandas DataFrame with :data:`OPS_COLUMNS`."""
    import pandas as pd  # type: ignore[import-untyped]

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


COLLECTIVE_COLUMNS = ["key", "kind", "group", "ranks", "bytes", "dtype", "start_us", "end_us", "busbw_gbps",
                      "transport", "call_site", "splits"]
"""``collectives.parquet``'s columns (the fields of :class:`phantora.coordinator.core.CollectiveRow`)."""
BREAKDOWN_COLUMNS = ["rank", "iteration", "start_us", "end_us", "dur_us", "compute_us", "exposed_comm_us", "idle_us"]


def write_tables(out_dir: Path, results: Mapping[int, Any], collectives: Sequence[Any] = ()) -> list[Path]:
    """``collectives.parquet`` (one row per collective) and ``breakdown.parquet`` (per rank and iteration)."""
    import pandas as pd  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    coll = pd.DataFrame([asdict(c) for c in collectives], columns=COLLECTIVE_COLUMNS)
    bd = pd.DataFrame(rank_breakdown(results), columns=BREAKDOWN_COLUMNS)
    paths = [out_dir / "collectives.parquet", out_dir / "breakdown.parquet"]
    for path, df in zip(paths, (coll, bd), strict=True):
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
    return paths


def write_results(out_dir: Path, *, results: Mapping[int, Any], scenario: Any, script: str,
                  argv: list[str], host_time: str, wall_s: float, collectives: Sequence[Any] = (),
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write every file of the module doc, ``summary.json`` (with ``extra`` merged in) last; returns the summary.

    So a ``summary.json`` saying ``complete`` means the other files are whole and from the same run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_summary(results=results, scenario=scenario, script=script, argv=argv,
                            host_time=host_time, wall_s=wall_s)
    summary.update(extra or {})
    write_missing_signatures(out_dir / "missing_signatures.jsonl", results)
    write_op_trace(out_dir, results)
    with atomic_path(out_dir / "ops.parquet") as tmp:
        ops_frame(results).to_parquet(tmp, index=False)
    name = summary["scenario"].get("name", "") if isinstance(summary["scenario"], dict) else str(scenario)
    with atomic_path(out_dir / "trace.json") as tmp, open(tmp, "w") as f:
        # json.dumps: the C encoder (json.dump streams through the pure-Python one, ~1 s per 200k events)
        f.write(json.dumps({"traceEvents": trace_events(results), "displayTimeUnit": "ms",
                            "otherData": {"script": script, "scenario": name}}))
    write_tables(out_dir, results, collectives)
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
