"""A matched collective's two derived views: the traffic matrix an uneven all-to-all puts on the
network, and the row a finished collective leaves in the results table (``collectives.parquet``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from common.protocol import CollectiveCall


@dataclass(frozen=True, slots=True)
class CollectiveRow:
    """One finished collective, for the results table."""

    key: str
    kind: str
    group: str
    ranks: int
    bytes: int
    dtype: str
    start_us: float
    end_us: float
    busbw_gbps: float
    transport: str
    call_site: str
    splits: tuple[tuple[int, ...], ...] = ()
    """``all_to_all``: the traffic matrix, bytes member ``i`` (row, group-rank order) sends to member ``j``
    (``bytes`` is then the largest per-rank buffer, sent or received); empty for other kinds."""


def with_traffic_matrix(call: CollectiveCall, issued: dict[int, CollectiveCall]) -> CollectiveCall:
    """An all-to-all whose members gave their send ``splits``, with the traffic matrix assembled from
    them; members that did not run here (a symmetric run) send what the lowest running rank sends."""
    if call.kind != "all_to_all" or not any(c.splits for c in issued.values()):
        return call
    first = issued[min(issued)]
    n = len(call.ranks)
    rows = []
    for r in call.ranks:
        c = issued.get(r, first)
        rows.append(tuple(c.splits) if len(c.splits) == n else tuple([c.nbytes // n] * n))
    buffer = max(max(sum(row) for row in rows), max(sum(col) for col in zip(*rows, strict=True)))
    return replace(call, matrix=tuple(rows), nbytes=buffer, splits=())
