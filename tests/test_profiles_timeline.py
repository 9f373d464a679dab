"""Trace replay on the two-clock timeline."""

from __future__ import annotations

import pytest

from profiles.store import ProfileEntry
from profiles.timeline import replay_trace


def e(key: str, op: str, dur: float, launch: float, gap: float = 0.0, family: str = "elementwise") -> ProfileEntry:
    return ProfileEntry(key=key, op=op, family=family, dtype="float32", dur_us=dur, launch_us=launch, host_gap_us=gap)


ENTRIES = {
    "k": e("k", "aten.mm.default", 10.0, 2.0, 1.0),
    "s": e("s", "aten._fused_adamw_.default", 5.0, 3.0, family="optimizer"),
    "item": e("item", "aten._local_scalar_dense.default", 1.0, 2.0),
}


def test_gpu_bound_iterations_and_launch_bound_host():
    keys = ["k", "k", "s"] * 4
    r = replay_trace(keys, ENTRIES)
    assert r.iter_us == pytest.approx(25.0)  # GPU-bound: 10 + 10 + 5 per iteration
    slow_host = {**ENTRIES, "k": e("k", "aten.mm.default", 1.0, 20.0, 0.0)}
    assert replay_trace(keys, slow_host).iter_us == pytest.approx(43.0)  # host-bound: 20 + 20 + 3


def test_sync_ops_make_host_wait_and_missing_are_counted():
    r = replay_trace(["k", "item", "k", "nope"], ENTRIES, host_gap=False)
    # k: host 2, gpu 2..12; item: host 4, gpu 12..13, host waits to 13; k: host 15, gpu 15..25
    assert r.total_us == pytest.approx(25.0) and r.missing == 1 and r.iter_us is None
