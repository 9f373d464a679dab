"""Op-stream conformance: does the simulator run the kernels a real GPU runs?

Compares two streams of op signature keys (:meth:`profiles.OpSignature.key`, ``op|shapes|dtypes|
contiguity|flags``) of the same program:

* the **real** stream, recorded on a GPU by ``phantora profile --trace T.gz --out P.jsonl SCRIPT``
  (the key of every kernel-launching op in call order; ``P.jsonl`` gives each key's median GPU time);
* the **simulated** stream, which ``phantora run`` writes into its results directory
  (``op_trace.gz``, same format, and ``op_times.jsonl`` with each key's simulated time).

Both are seen by a ``TorchDispatchMode`` (after autograd and autocast) and keyed by the same
``profiles.signature_of``, so a program the shim runs faithfully gives the same multiset of keys.

Alignment: both streams are cut into segments after each occurrence of one optimizer-step key
(:func:`choose_marker`: a ``_fused_adam*``/``_fused_sgd``/``_foreach_*`` key that occurs equally often
in both, fewest occurrences, last in the step); segment *i* of the real run is compared with segment
*i* of the simulated one as multisets (op order within a segment does not matter). When no such key
exists, or the streams cut into different numbers of segments, the whole runs are compared as one.
``steady=True`` keeps only the iterations after the first (segments 1 .. n-1, no setup, no tail).

Within a segment, what is left after exact matches is paired into **different** ops (same
:func:`family`, e.g. ``_scaled_dot_product_flash_attention`` vs ``_scaled_dot_product_cudnn_attention``,
or an ``mm`` in another dtype) by similarity of the key's fields; the rest is **missing** (real only)
or **extra** (simulated only). Matched, different and missing ops are weighted by their real GPU
time (profile ``dur_us`` per call); extra ops by their simulated time; every share is a fraction of
the compared real GPU time. Real keys that the profile lacks (ops the recorder could not re-run) are
weighted by the simulator's time for the same key when it has one (``estimated_ops``), else 0
(``unweighted_ops``).

Torch-free (reads text files), so ``phantora conformance`` runs anywhere.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

KINDS = ("matched", "different", "missing", "extra")
FIELDS = ("op", "shapes", "dtypes", "contiguity", "flags")
_STEP_PREFIXES = ("_fused_adam", "_fused_sgd", "_fused_adagrad", "_foreach_")


class ConformanceInputError(ValueError):
    """An input file that cannot be read; the message names the file (and line)."""


# ----------------------------------------------------------------------------- reading


def _open_text(path: Path):
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
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConformanceInputError(f"{path}:{i}: not JSON ({e.msg})") from None
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


# ----------------------------------------------------------------------------- keys


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


def _similarity(real_key: str, sim_key: str) -> int:
    a, b = parse_key(real_key), parse_key(sim_key)
    return sum(getattr(a, f) == getattr(b, f) for f in FIELDS)


# ----------------------------------------------------------------------------- segments


def is_step_op(key: str) -> bool:
    name = key.split("|", 1)[0].split(".")
    return len(name) > 1 and name[1].startswith(_STEP_PREFIXES)


def choose_marker(real: Sequence[str], sim: Sequence[str]) -> str | None:
    """The optimizer-step key that cuts both streams into iterations (see the module doc), or ``None``."""
    rc = Counter(k for k in real if is_step_op(k))
    sc = Counter(k for k in sim if is_step_op(k))
    common = [k for k in rc if sc.get(k) == rc[k]]
    if not common:
        return None
    fewest = min(rc[k] for k in common)
    first: dict[str, int] = {}
    for i, k in enumerate(real):
        if k not in first:
            first[k] = i
    return max((k for k in common if rc[k] == fewest), key=lambda k: first[k])


def split(keys: Sequence[str], marker: str | None) -> list[list[str]]:
    """Segments ending after each ``marker`` (the last one is what follows the last marker)."""
    if marker is None:
        return [list(keys)]
    out: list[list[str]] = [[]]
    for k in keys:
        out[-1].append(k)
        if k == marker:
            out.append([])
    return out


# ----------------------------------------------------------------------------- comparison


@dataclass
class Row:
    """One divergence (or, with ``kind='matched'``, one matched key), summed over the compared segments."""

    kind: str
    real_key: str | None
    sim_key: str | None
    count: int = 0
    real_us: float = 0.0
    """Real GPU time of these ops (``count`` x profile ``dur_us``); 0 for extras."""
    sim_us: float = 0.0
    """Simulated GPU time of these ops; 0 for missing ones."""
    share: float = 0.0
    """``real_us`` (``sim_us`` for extras) as a fraction of the compared real GPU time."""
    differs: list[str] = field(default_factory=list)
    """For ``different``: the key fields that differ (``op``, ``shapes``, ``dtypes``, ``contiguity``, ``flags``)."""

    @property
    def op(self) -> str:
        return parse_key(self.real_key or self.sim_key or "").op


@dataclass
class Report:
    mode: str
    """``segments`` (iteration by iteration), ``steady`` (iterations after the first) or ``whole`` (one segment)."""
    marker: str | None
    real_segments: int
    sim_segments: int
    compared_segments: int
    real_ops: int
    sim_ops: int
    real_us: float
    """Compared real GPU time (the denominator of every share)."""
    shares: dict[str, float]
    """Fraction of ``real_us`` per kind (``extra``: simulated time of extra ops / ``real_us``)."""
    counts: dict[str, int]
    estimated_ops: int
    unweighted_ops: int
    rows: list[Row]
    """Divergences (kinds other than ``matched``), largest share first."""
    notes: list[str] = field(default_factory=list)

    @property
    def matched_share(self) -> float:
        return self.shares.get("matched", 0.0)

    def to_json_lines(self) -> list[str]:
        head = {k: v for k, v in asdict(self).items() if k != "rows"}
        head = {"kind": "summary", **head}
        lines = [json.dumps(head)]
        lines += [json.dumps(asdict(r)) for r in self.rows]
        return lines


def _pair(real_left: Counter, sim_left: Counter) -> list[tuple[str, str, int]]:
    """Pair leftover real and simulated keys of one family, most similar first (deterministic)."""
    by_family: dict[str, list[str]] = {}
    for k in sim_left:
        by_family.setdefault(family(parse_key(k).op), []).append(k)
    pairs = []
    for rk in sorted(real_left, key=lambda k: (-real_left[k], k)):
        cands = by_family.get(family(parse_key(rk).op))
        while real_left[rk] > 0 and cands:
            sk = max(cands, key=lambda k: (_similarity(rk, k), sim_left[k], k))
            n = min(real_left[rk], sim_left[sk])
            pairs.append((rk, sk, n))
            real_left[rk] -= n
            sim_left[sk] -= n
            if sim_left[sk] == 0:
                cands.remove(sk)
    return pairs


def compare(
    real: Sequence[str],
    real_dur: Mapping[str, float],
    sim: Sequence[str],
    sim_dur: Mapping[str, float],
    *,
    steady: bool = False,
    align: bool = True,
) -> Report:
    """Compare a real and a simulated op stream (see the module doc)."""
    notes: list[str] = []
    marker = choose_marker(real, sim) if align else None
    rseg, sseg = split(real, marker), split(sim, marker)
    mode = "segments"
    if marker is None:
        mode = "whole"
        if align:
            notes.append("no optimizer-step key occurs equally often in both streams: whole runs compared")
    elif len(rseg) != len(sseg):  # cannot happen with equal marker counts; kept for safety
        notes.append(f"streams cut into {len(rseg)} (real) and {len(sseg)} (sim) segments: whole runs compared")
        rseg, sseg, mode = [list(real)], [list(sim)], "whole"
    n_r, n_s = len(rseg), len(sseg)
    if steady:
        if mode == "segments" and len(rseg) >= 3:
            rseg, sseg, mode = rseg[1:-1], sseg[1:-1], "steady"
        else:
            notes.append("fewer than two iterations to compare after the first: whole runs compared")

    estimated: set[str] = set()
    unweighted: set[str] = set()
    est_n = unw_n = 0

    def rw(k: str) -> float:
        d = real_dur.get(k)
        if d is not None:
            return d
        d = sim_dur.get(k)
        if d is not None:
            estimated.add(k)
            return d
        unweighted.add(k)
        return 0.0

    acc: dict[tuple[str, str | None, str | None], Row] = {}

    def add(kind: str, rk: str | None, sk: str | None, n: int) -> None:
        row = acc.get((kind, rk, sk))
        if row is None:
            differs = differing_fields(rk, sk) if kind == "different" and rk and sk else []
            row = acc[(kind, rk, sk)] = Row(kind, rk, sk, differs=differs)
        row.count += n
        if rk is not None:
            row.real_us += n * rw(rk)
        if sk is not None:
            row.sim_us += n * sim_dur.get(sk, 0.0)

    for r, s in zip(rseg, sseg, strict=True):
        rc, sc = Counter(r), Counter(s)
        for k in rc:
            m = min(rc[k], sc.get(k, 0))
            if m:
                add("matched", k, k, m)
        rl, sl = rc - sc, sc - rc
        for rk, sk, n in _pair(rl, sl):
            add("different", rk, sk, n)
        for k, n in rl.items():
            if n > 0:
                add("missing", k, None, n)
        for k, n in sl.items():
            if n > 0:
                add("extra", None, k, n)

    rows = list(acc.values())
    real_us = sum(r.real_us for r in rows if r.kind != "extra")
    by_kind_us = {k: 0.0 for k in KINDS}
    counts = {k: 0 for k in KINDS}
    for row in rows:
        by_kind_us[row.kind] += row.sim_us if row.kind == "extra" else row.real_us
        counts[row.kind] += row.count
        row.share = (row.sim_us if row.kind == "extra" else row.real_us) / real_us if real_us else 0.0
    for row in rows:
        if row.real_key in estimated:
            est_n += row.count
        if row.real_key in unweighted:
            unw_n += row.count
    shares = {k: (v / real_us if real_us else 0.0) for k, v in by_kind_us.items()}
    if unweighted:
        notes.append(f"{len(unweighted)} real keys have no time in the profile or the simulation (weighted 0)")
    divergences = sorted(
        (r for r in rows if r.kind != "matched"),
        key=lambda r: (-r.share, -r.count, r.kind, r.real_key or r.sim_key or ""),
    )
    return Report(
        mode=mode,
        marker=marker,
        real_segments=n_r,
        sim_segments=n_s,
        compared_segments=len(rseg),
        real_ops=sum(map(len, rseg)),
        sim_ops=sum(map(len, sseg)),
        real_us=real_us,
        shares=shares,
        counts=counts,
        estimated_ops=est_n,
        unweighted_ops=unw_n,
        rows=divergences,
        notes=notes,
    )


# ----------------------------------------------------------------------------- presentation


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def describe(row: Row, width: int = 120) -> str:
    """What diverges, in a table cell: the key (missing/extra) or ``field: real → sim`` (different)."""
    if row.kind in ("missing", "extra"):
        key = row.real_key or row.sim_key or ""
        p = parse_key(key)
        return _short("|".join((p.shapes, p.dtypes, p.contiguity, p.flags)), width)
    a, b = parse_key(row.real_key or ""), parse_key(row.sim_key or "")
    bits = []
    for f in row.differs:
        x, y = getattr(a, f), getattr(b, f)
        if f == "op":
            x, y = x.removeprefix("aten."), y.removeprefix("aten.")
        bits.append(f"{f}: {x or '-'} → {y or '-'}")
    if "shapes" not in row.differs:
        bits.insert(0, a.shapes)
    return _short("; ".join(bits), width)


def summary_line(rep: Report) -> str:
    s = rep.shares
    where = {"segments": f"{rep.compared_segments} segments (iteration by iteration)",
             "steady": f"{rep.compared_segments} iterations after the first",
             "whole": "whole runs"}[rep.mode]  # fmt: skip
    return (
        f"matched {100 * s['matched']:.2f}% of real GPU time ({rep.counts['matched']}/{rep.real_ops} real ops); "
        f"different {100 * s['different']:.2f}%, missing {100 * s['missing']:.2f}%; "
        f"extra (simulated time) {100 * s['extra']:.2f}%; real GPU time {rep.real_us / 1e3:.3f} ms over {where}"
    )


def table_rows(rep: Report, top: int) -> Iterable[tuple[str, ...]]:
    for r in rep.rows[:top]:
        yield (
            r.kind,
            f"{100 * r.share:.2f}",
            str(r.count),
            f"{r.real_us:.1f}",
            f"{r.sim_us:.1f}",
            _short(r.op.removeprefix("aten."), 48),
            describe(r),
        )


TABLE_COLUMNS = ("kind", "% real", "ops", "real us", "sim us", "op", "key (missing, extra) or what differs (real → sim)")
