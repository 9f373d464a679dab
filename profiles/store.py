"""Profile files: measured kernel timings in a versioned, diff-friendly text format.

One profile is a JSON Lines file (``.jsonl``, or ``.jsonl.gz`` when large): a
header line describing where it was measured, then one :class:`ProfileEntry`
per op signature, sorted by key so that re-recording shows as a small diff::

    {"format": "phantora-profile", "version": 1, "gpu": "h100", "gpu_name": ..., "torch": ...,
     "cuda": ..., "driver": ..., "clocks": {...}, "date": ..., "source": ...}
    {"key": "aten.mm.default|64x64;64x64|...", "op": "aten.mm.default", "family": "matmul", ...}

Merging (:func:`load_profiles`): files are read in the order given, a directory
contributing its ``*.jsonl``/``*.jsonl.gz`` files in name order, and for a key
present in several files the LATER file wins. Files measured on another GPU
model are skipped (or refused when ``strict``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FORMAT = "phantora-profile"
VERSION = 1


class ProfileFormatError(ValueError):
    """A profile file that cannot be read; the message names the file, line and field."""


@dataclass(slots=True, kw_only=True)
class ProfileEntry:
    """One measured op signature."""

    key: str
    """:meth:`profiles.compute.OpSignature.key` of the op."""
    op: str
    family: str
    """:func:`profiles.cost.family_of` of ``op``."""
    dtype: str
    """dtype of the first tensor argument (picks the peak rate for the fitted fallback)."""
    shapes: str = ""
    """Human-readable shapes (truncated for long tensor lists); not used for matching."""
    flops: float = 0.0
    bytes: float = 0.0
    n_tensors: int = 0
    dur_us: float
    """Median GPU time over ``n`` timed runs (CUDA events), microseconds."""
    p10_us: float = 0.0
    p90_us: float = 0.0
    n: int = 0
    launch_us: float = 0.0
    """Host time of the dispatch call itself (framework + driver launch), median, microseconds."""
    host_gap_us: float | None = None
    """Median host time the recorded script spent between the previous op and this one
    (its own Python work), microseconds; ``None`` when not recorded (``--kernels-only``)."""
    calls: int = 0
    first_call_us: float | None = None
    """Host time of the recorded program's own first call of this signature (per-shape plan
    building such as cuDNN graphs, lazy kernel loading), microseconds; ``None`` when not recorded."""
    """How many times the recorded script called this signature."""

    def to_json(self) -> str:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 3)
        return json.dumps(d, separators=(",", ":"))


_ENTRY_FIELDS = {f.name for f in fields(ProfileEntry)}
_REQUIRED = ("key", "op", "family", "dtype", "dur_us")


@dataclass(slots=True, kw_only=True)
class ProfileHeader:
    """Where and how a profile was measured."""

    gpu: str
    """GPU key (``h100``, ``h200``) as in :mod:`profiles.gpus`."""
    gpu_name: str = ""
    torch: str = ""
    cuda: str = ""
    driver: str = ""
    clocks: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    source: str = ""
    """What was run to record it (script and arguments, or ``kernels-only FILE``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return json.dumps(d, separators=(",", ":"), sort_keys=False)


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def write_profile(path: str | Path, header: ProfileHeader, entries: Iterable[ProfileEntry]) -> Path:
    """Write a profile file (entries sorted by key; ``.gz`` suffix compresses)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(entries, key=lambda e: e.key)
    with _open(path, "w") as f:
        f.write(header.to_json() + "\n")
        for e in rows:
            f.write(e.to_json() + "\n")
    return path


def read_profile(path: str | Path) -> tuple[ProfileHeader, dict[str, ProfileEntry]]:
    """Read one profile file; bad content raises :class:`ProfileFormatError` naming file and field."""
    path = Path(path)
    try:
        with _open(path, "r") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ProfileFormatError(f"{path}: cannot read ({e.strerror or e})") from None
    if not lines:
        raise ProfileFormatError(f"{path}: empty file (expected a '{FORMAT}' header line)")
    head = _parse(path, 1, lines[0])
    if head.get("format") != FORMAT:
        raise ProfileFormatError(f"{path}:1: field 'format' must be '{FORMAT}', got {head.get('format')!r}")
    if head.get("version") != VERSION:
        raise ProfileFormatError(f"{path}:1: field 'version' must be {VERSION}, got {head.get('version')!r}")
    if not isinstance(head.get("gpu"), str):
        raise ProfileFormatError(f"{path}:1: field 'gpu' is missing")
    header = ProfileHeader(**{k: v for k, v in head.items() if k not in ("format", "version")})
    from profiles.cost import refreshed_costs  # imports torch: only once a profile is read

    entries: dict[str, ProfileEntry] = {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        d = _parse(path, i, line)
        for k in _REQUIRED:
            if k not in d:
                raise ProfileFormatError(f"{path}:{i}: field '{k}' is missing")
        if not isinstance(d["dur_us"], int | float) or d["dur_us"] < 0:
            raise ProfileFormatError(f"{path}:{i}: field 'dur_us' must be a non-negative number")
        entry = ProfileEntry(**{k: v for k, v in d.items() if k in _ENTRY_FIELDS})
        entry.family, entry.flops = refreshed_costs(entry.op, entry.key, entry.flops)
        entries[d["key"]] = entry
    return header, entries


def _parse(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise ProfileFormatError(f"{path}:{lineno}: not JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise ProfileFormatError(f"{path}:{lineno}: expected a JSON object")
    return d


def profile_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand directories to their profile files (name order); files pass through."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.name.endswith((".jsonl", ".jsonl.gz")))
        elif p.exists():
            yield p
        else:
            raise ProfileFormatError(f"{p}: no such profile file or directory")


def load_profiles(
    paths: Iterable[str | Path], *, gpu: str | None = None, strict: bool = False,
    origins: dict[str, int] | None = None,
) -> tuple[dict[str, ProfileEntry], list[ProfileHeader]]:
    """Merge profile files (later file wins per key), keeping only those measured on ``gpu``.

    A file for another GPU is skipped, or raises when ``strict`` (a file the
    user named explicitly for the wrong GPU is an error, a shared directory
    holding several GPUs' files is not). ``origins``, when given, is filled with
    each kept key's index into the returned headers (how its host costs were measured).
    """
    merged: dict[str, ProfileEntry] = {}
    headers: list[ProfileHeader] = []
    for path in profile_files(paths):
        header, entries = read_profile(path)
        if gpu is not None and header.gpu.lower() != gpu.lower():
            if strict:
                raise ProfileFormatError(f"{path}:1: field 'gpu' is {header.gpu!r}, the simulated GPU is {gpu!r}")
            continue
        headers.append(header)
        merged.update(entries)
        if origins is not None:
            origins.update(dict.fromkeys(entries, len(headers) - 1))
    return merged, headers
