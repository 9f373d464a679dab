"""Per-iteration breakdown: compute / exposed communication / idle from op intervals."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from phantora.breakdown import iteration_breakdown, merge


@dataclass
class Op:
    start_us: float
    dur_us: float
    source: str = "roofline"


def test_merge_overlapping_intervals():
    m = merge([(5, 7), (0, 2), (1, 3), (6, 9)])
    assert m.tolist() == [[0, 3], [5, 9]]


def test_breakdown_counts_only_exposed_communication():
    ops = [Op(0, 40), Op(30, 30, "external"), Op(70, 10)]  # comm 30..60 overlaps compute until 40
    (row,) = iteration_breakdown(0, ops, [(0.0, 100.0)])
    assert row["compute_us"] == pytest.approx(50.0)
    assert row["exposed_comm_us"] == pytest.approx(20.0)
    assert row["idle_us"] == pytest.approx(30.0)
