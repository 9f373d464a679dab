"""Host copies are timed by the GPU host's measured link (profiles/host_link.py): a pageable copy runs at a
fraction of a pinned one's rate and holds the host even with ``non_blocking=True``; a pinned one does not.
The H200 host's measurement (profiles/data/h200/host_link.ndjson) is the fixture."""

from __future__ import annotations

import torch
from conftest import roofline_cfg

from interpose import interposed
from profiles.host_link import HostLink, host_link

MIB = 2**20


def test_measured_link_pageable_vs_pinned():
    link = host_link("h200")
    assert link.measured and "host_link.ndjson" in link.source
    pageable = link.cost("h2d", 64 * MIB, pinned=False, non_blocking=True)
    pinned = link.cost("h2d", 64 * MIB, pinned=True, non_blocking=True)
    assert pageable.blocks_host and not pinned.blocks_host
    assert pageable.stream_us > 3 * pinned.stream_us  # measured: ~13 vs ~54 GB/s
    assert 45 < 64 * MIB / pinned.stream_us / 1e3 < 60  # GB/s
    assert link.cost("d2h", 16, pinned=False, non_blocking=False).stream_us >= 1.0
    # past the largest measured size: that size's bandwidth
    big = link.cost("h2d", 1024 * MIB, True, True).stream_us
    assert 3.5 < big / link.cost("h2d", 256 * MIB, True, True).stream_us < 4.5


def test_unmeasured_gpu_keeps_the_assumption_labelled():
    link = host_link("h100")
    assert not link.measured and link.source == "assumed"
    c = link.cost("h2d", 50_000_000, pinned=True, non_blocking=False)
    assert c.blocks_host and abs(c.stream_us - 1008.0) < 1e-6
    assert HostLink().cost("h2d", 10, pinned=False, non_blocking=True).blocks_host  # pageable: staged


def test_shim_charges_pageable_copies_to_the_host_and_not_pinned_ones():
    with interposed(roofline_cfg("h200")) as rt:
        x = torch.randn(2048, 4096)  # 32 MiB, pageable
        torch.cuda.synchronize()
        t0 = rt.clock.host_us
        x.cuda(non_blocking=True)
        pageable_us = rt.clock.host_us - t0
        p = x.pin_memory()
        assert p.is_pinned() and p[:1024].is_pinned() and not x.clone().is_pinned()
        assert not x.is_pinned() and p.data_ptr() != x.data_ptr() and torch.equal(p, x)  # a pinned copy
        assert p.pin_memory() is p
        torch.cuda.synchronize()
        t0 = rt.clock.host_us
        p[:1024].cuda(non_blocking=True)  # a view of a pinned buffer is pinned
        pinned_us = rt.clock.host_us - t0
        e = torch.empty(1024, 4096, pin_memory=True)
        assert e.is_pinned()
        assert rt.host_model["host_link"].startswith("measured")
    expected = host_link("h200").cost("h2d", 32 * MIB, pinned=False, non_blocking=True).stream_us
    assert pageable_us >= expected > 1000  # the host waited for the staged copy (~2.5 ms)
    assert pinned_us < 100  # only the launch


def test_pageable_copy_behind_queued_work_takes_the_busy_curve():
    link = host_link("h200")
    idle = link.cost("h2d", 64 * MIB, pinned=False, non_blocking=True)
    busy = link.cost("h2d", 64 * MIB, pinned=False, non_blocking=True, busy=True)
    assert busy.stream_us > 1.5 * idle.stream_us  # measured: 6.7 vs 13.1 GB/s
    # pinned copies and copies below the busy curve's smallest size keep the idle curve
    assert link.cost("h2d", 64 * MIB, True, True, busy=True) == link.cost("h2d", 64 * MIB, True, True)
    assert link.cost("h2d", 4096, False, True, busy=True) == link.cost("h2d", 4096, False, True)


def test_shim_passes_busy_when_the_stream_has_queued_work():
    x = torch.randn(4096, 4096)  # 64 MiB, pageable
    with interposed(roofline_cfg("h200")) as rt:
        torch.cuda.synchronize()
        t0 = rt.clock.host_us
        x.cuda(non_blocking=True)
        idle_us = rt.clock.host_us - t0
        a = torch.empty(8192, 8192, device="cuda")
        for _ in range(4):
            a = a @ a  # queued GPU work, the host runs ahead
        assert rt.stream_ready_us(rt.current_stream) > rt.clock.host_us
        t0 = rt.clock.host_us
        x.cuda(non_blocking=True)
        busy_us = rt.clock.host_us - t0
        ready_before = rt.stream_ready_us(rt.current_stream)
    link = host_link("h200")
    assert idle_us >= link.cost("h2d", 64 * MIB, False, True).stream_us
    assert busy_us - link.cost("h2d", 64 * MIB, False, True, busy=True).stream_us > 0  # waited for the matmuls too
    assert ready_before >= rt.clock.host_us - 1e-6
