"""The two op streams and their keys: reading trace files (``phantora profile --trace`` / a run's
``op_trace.gz``), profiles and ``op_times.jsonl``, and the fields of a signature key
(``op|shapes|dtypes|contiguity|flags``). Torch-free: plain text files."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from phantora.jsonl import records

FIELDS = ("op", "shapes", "dtypes", "contiguity", "flags")


class ConformanceInputError(ValueError):
    """An input file that cannot be read; the message names the file (and line)."""


def _open_text(path: Path) -> IO[str]:
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rt", encoding="utf-8") if magic == b"\x1f\x8b" else open(path, encoding="utf-8")
    except OSError as e:
        raise ConformanceInputError(f"{path}: cannot read ({e.strerror})") from None


def read_trace(path: str | Path) -> list[str]:
    """Keys of a trace file (``phantora profile --trace`` / ``op_trace.gz``), in call order."""
    path = Path(path)
    try:
        with _open_text(path) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ConformanceInputError(f"{path}: not a trace file ({e})") from None


def read_durations(path: str | Path) -> dict[str, float]:
    """``key -> dur_us`` of a profile (``phantora profile --out``, header line skipped) or an
    ``op_times.jsonl``; JSON Lines, gzip or plain."""
    path = Path(path)
    out: dict[str, float] = {}
    try:
        with _open_text(path) as f:
            for i, d in records(path, f, ConformanceInputError):
                if not isinstance(d, dict) or "format" in d:
                    continue  # a profile's header
                if "key" not in d or "dur_us" not in d:
                    raise ConformanceInputError(f"{path}:{i}: field 'key' or 'dur_us' is missing")
                out[str(d["key"])] = float(d["dur_us"])
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ConformanceInputError(f"{path}: not a JSON Lines file ({e})") from None
    return out


def read_sim(results_dir: str | Path) -> tuple[list[str], dict[str, float]]:
    """The simulated stream of a ``phantora run`` results directory: keys and ``key -> dur_us``."""
    d = Path(results_dir)
    trace, times = d / "op_trace.gz", d / "op_times.jsonl"
    if not trace.is_file():
        raise ConformanceInputError(
            f"{d}: no op_trace.gz (not a phantora run results directory, or one from before op traces)"
        )
    return read_trace(trace), (read_durations(times) if times.is_file() else {})


@dataclass(frozen=True, slots=True)
class KeyParts:
    op: str
    shapes: str
    dtypes: str
    contiguity: str
    flags: str


def parse_key(key: str) -> KeyParts:
    """The fields of ``op|shapes|dtypes|contiguity|flags`` (flags may hold ``|`` in strings)."""
    parts = key.split("|", 4)
    parts += [""] * (5 - len(parts))
    return KeyParts(*parts)


def family(op: str) -> str:
    """What an op is for, to pair a real op with the simulated op that stands in its place: every SDPA
    backend (flash, cuDNN, memory-efficient, their ``_backward``) is one family; ``add_`` is ``add``'s;
    otherwise the op name without namespace and overload."""
    parts = op.split(".")
    name = parts[1] if len(parts) > 1 else parts[0]
    if "attention" in name:
        return "attention_backward" if "backward" in name else "attention"
    return name.rstrip("_") or name


def differing_fields(real_key: str, sim_key: str) -> list[str]:
    a, b = parse_key(real_key), parse_key(sim_key)
    return [f for f in FIELDS if getattr(a, f) != getattr(b, f)]


def similarity(real_key: str, sim_key: str) -> int:
    """How many key fields two keys share (pairs a leftover real op with its closest simulated one)."""
    a, b = parse_key(real_key), parse_key(sim_key)
    return sum(getattr(a, f) == getattr(b, f) for f in FIELDS)
