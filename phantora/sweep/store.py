"""A sweep's folder: ``points/<id>/`` per point (its ``scenario.yaml``, the run's output, ``result.json``
once finished), ``points.json`` (the index) and ``sweep.parquet`` (the table, rewritten after every point).

A point is finished once its ``result.json`` exists (written atomically) with the same
:func:`fingerprint`, so rerunning the same command resumes and skips finished points; one sweep at a
time may write into a folder (``.phantora-sweep.lock``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from phantora.results.files import atomic_path
from phantora.sweep.schema import SweepError
from phantora.sweep.study import Point, Study

RESULT_FILE = "result.json"
TABLE_FILE = "sweep.parquet"
LOCK_FILE = ".phantora-sweep.lock"


@dataclass
class PointOutcome:
    point_id: str
    ok: bool
    rows: list[dict[str, Any]]
    error: str | None
    wall_s: float
    reused: bool = False


def point_dir(out: Path, pid: str) -> Path:
    return out / "points" / pid


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (never a half-written file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def materialise(study: Study, out: Path) -> None:
    """Write every point's scenario to ``<out>/points/<id>/scenario.yaml`` (and the study's index)."""
    for pt in study.points:
        d = point_dir(out, pt.id)
        d.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(pt.scenario, sort_keys=False)
        f = d / "scenario.yaml"
        if not f.is_file() or f.read_text() != text:
            write_atomic(f, text)
    index = [{"point_id": pt.id, "overrides": pt.overrides} for pt in study.points]
    write_atomic(out / "points.json", json.dumps({"study": study.spec.study.name, "swept": study.swept,
                                                  "command": study.spec.study.command,
                                                  "points": index}, indent=2, default=str))


def load_result(out: Path, pid: str) -> dict[str, Any] | None:
    """A finished point's result (``None`` if the point has not completed)."""
    f = point_dir(out, pid) / RESULT_FILE
    try:
        data = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("complete") else None


def fingerprint(argv: list[str], pdir: Path) -> str:
    """What a point's result depends on that the sweep can see: its command line and scenario.

    A finished point is reused only while this matches, so editing the study's arguments or
    the base scenario reruns the affected points instead of mixing old and new results.
    (Edits to the training script's own code are not tracked: use a new ``--out``.)
    """
    scenario = pdir / "scenario.yaml"
    text = scenario.read_text() if scenario.is_file() else ""
    return hashlib.sha256(json.dumps([argv, text]).encode()).hexdigest()[:16]


def point_command(study: Study, out: Path, pt: Point) -> list[str]:
    d = point_dir(out, pt.id)
    return study.kind.command(study, d / "scenario.yaml", d / "out")


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """One sweep at a time writes into ``out`` (an exclusive ``fcntl`` lock for the sweep's duration)."""
    from phantora.lifecycle import forget, take_lock

    f = take_lock(out / LOCK_FILE, where=str(out), busy="phantora sweep (pid {pid}) is running there",
                  error=SweepError)
    try:
        yield
    finally:
        forget(f)
        f.close()


def table_rows(study: Study, outcomes: Mapping[str, PointOutcome]) -> list[dict[str, Any]]:
    """Tidy rows: point id, swept fields, status, then the metrics (one row per result row)."""
    rows = []
    for pt in study.points:
        o = outcomes.get(pt.id)
        if o is None:
            continue
        key: dict[str, Any] = {"point_id": pt.id}
        for name in study.swept:
            key[name] = pt.overrides.get(name)
        key["status"] = "ok" if o.ok else "failed"
        key["error"] = o.error
        key["point_wall_s"] = round(o.wall_s, 3)
        for r in o.rows or [{}]:
            rows.append({**key, **{k: v for k, v in r.items() if k not in key}})
    return rows


def write_table(study: Study, out: Path, outcomes: Mapping[str, PointOutcome]) -> Path:
    import pandas as pd  # type: ignore[import-untyped]

    df = pd.DataFrame(table_rows(study, outcomes))
    for name in study.swept:  # mixed-type columns (e.g. 1 and "2:1") would not fit parquet
        if name in df and df[name].map(type).nunique() > 1:
            df[name] = df[name].astype(str)
    path = out / TABLE_FILE
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path
