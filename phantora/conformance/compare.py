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

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from phantora.conformance.streams import differing_fields, family, parse_key, similarity

KINDS = ("matched", "different", "missing", "extra")
_STEP_PREFIXES = ("_fused_adam", "_fused_sgd", "_fused_adagrad", "_foreach_")


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
            sk = max(cands, key=lambda k: (similarity(rk, k), sim_left[k], k))
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
