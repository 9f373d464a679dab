"""RankRuntime streams, events and the external-work hook for the coordinator."""

from __future__ import annotations

import profiles
from interpose import RankConfig
from interpose.runtime import RankRuntime


def _rt() -> RankRuntime:
    gpu = profiles.get_gpu("h100")
    return RankRuntime(
        RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero")
    )


def test_ops_queue_per_stream():
    rt = _rt()
    s1 = rt.new_stream()
    e1 = rt.launch("a", "", "", 100.0, 5.0, "roofline")
    e2 = rt.launch("b", "", "", 100.0, 5.0, "roofline")
    assert (e1, e2) == (105.0, 205.0)  # b waits for a on the same stream
    e3 = rt.launch("c", "", "", 10.0, 5.0, "roofline", stream=s1)
    assert e3 == 15.0 + 10.0  # other stream: starts at host time (3 launches = 15 us)
    assert rt.gpu_busy_us == 210.0
    rt.sync_device()
    assert rt.clock.host_us == 205.0


def test_event_wait_orders_streams():
    rt = _rt()
    side = rt.new_stream()
    rt.launch("a", "", "", 100.0, 0.0, "roofline")
    mark = rt.record_event()
    rt.stream_wait_event(side, mark)
    end = rt.launch("b", "", "", 1.0, 0.0, "roofline", stream=side)
    assert end == 101.0


def test_external_work_resolved_lazily_by_pluggable_resolver():
    rt = _rt()
    asked = []

    def resolver(h):
        asked.append(h.key)
        return h.issue_us + 500.0

    rt.resolver = resolver
    rt.launch("a", "", "", 100.0, 0.0, "roofline")
    h = rt.enqueue_external(None, key=("allreduce", 0), nbytes=1 << 20)
    assert h.issue_us == 100.0 and not h.resolved and asked == []
    end = rt.launch("b", "", "", 10.0, 0.0, "roofline")  # must run after the collective
    assert asked == [("allreduce", 0)] and h.end_us == 600.0 and end == 610.0
    rt.record_external(h, "nccl:all_reduce")
    assert rt.result().ops[-1].source == "external"


def test_default_resolver_uses_duration_hint():
    rt = _rt()
    h = rt.enqueue_external(None, key=1, dur_us=42.0)
    rt.sync_stream()
    assert h.end_us == 42.0 and rt.clock.host_us == 42.0 and rt.syncs == 1
