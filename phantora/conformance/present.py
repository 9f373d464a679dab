"""A conformance :class:`~phantora.conformance.compare.Report` as text: the summary line and table rows."""

from __future__ import annotations

from collections.abc import Iterable

from phantora.conformance.compare import Report, Row
from phantora.conformance.streams import parse_key


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
