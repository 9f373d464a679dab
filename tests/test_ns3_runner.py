"""Packet-level checks of the ns-3 flow driver: line rate, sharing, pinned-path collisions, spraying.

Every test here needs the real simulator; the ~12 s import happens once in a session fixture.
Sizes are small (a few MiB at 10 Gb/s) so each test simulates in well under a second.
"""

from __future__ import annotations

from typing import Any

import pytest

from netsim.ns3.flowsets import StepLatency, ring_all_gather
from netsim.ns3.spec import FabricSpec, PacketFlow, TransportSpec

pytestmark = pytest.mark.ns3

MIB = 1 << 20
GBPS = 10.0
FABRIC = FabricSpec(n_hosts=4, hosts_per_leaf=2, n_spines=2, nic_gbps=GBPS, uplink_gbps=GBPS, hop_latency_ns=1000)


@pytest.fixture(scope="session")
def ns3_runner() -> Any:
    pytest.importorskip("ns", reason="ns-3 bindings not installed (pip install -e .[ns3])")
    from netsim.ns3 import runner

    runner._ns()  # pay the import and the C++ JIT once
    return runner


def _ideal_ns(size_bytes: int, gbps: float = GBPS) -> float:
    return size_bytes * 8 / gbps


def _run(runner: Any, flows: list[PacketFlow], fabric: FabricSpec = FABRIC) -> dict[int, Any]:
    return {r.flow_id: r for r in runner.simulate(fabric, TransportSpec(), flows).flows}


def test_single_flow_reaches_line_rate_minus_headers(ns3_runner: Any) -> None:
    res = _run(ns3_runner, [PacketFlow(flow_id=0, src_host=0, dst_host=2, size_bytes=4 * MIB)])
    efficiency = ns3_runner.tcp_segment_bytes(FABRIC.mtu_bytes) / (FABRIC.mtu_bytes + 2)
    ratio = res[0].duration_ns / _ideal_ns(4 * MIB)
    assert 1 / efficiency <= ratio < 1.03


def test_two_flows_share_one_nic(ns3_runner: Any) -> None:
    flows = [PacketFlow(flow_id=i, src_host=0, dst_host=2 + i, size_bytes=2 * MIB, spines=(i,)) for i in range(2)]
    res = _run(ns3_runner, flows)
    # the sender's NIC is the bottleneck: each flow gets about half, so both end near 4 MiB's time
    for r in res.values():
        assert 0.85 < r.finish_ns / _ideal_ns(4 * MIB) < 1.05


def test_pinned_collision_halves_throughput(ns3_runner: Any) -> None:
    def pair(spines: tuple[int, int]) -> float:
        flows = [
            PacketFlow(flow_id=i, src_host=i, dst_host=2 + i, size_bytes=2 * MIB, spines=(spines[i],)) for i in range(2)
        ]
        return max(r.finish_ns for r in _run(ns3_runner, flows).values()) / _ideal_ns(2 * MIB)

    apart, together = pair((0, 1)), pair((0, 0))
    assert apart < 1.05
    assert 1.9 < together < 2.15


def test_multipath_spreads_colliding_flows(ns3_runner: Any) -> None:
    flows = [PacketFlow(flow_id=i, src_host=i, dst_host=2 + i, size_bytes=2 * MIB, spines=(0, 1)) for i in range(2)]
    res = _run(ns3_runner, flows)
    assert max(r.finish_ns for r in res.values()) / _ideal_ns(2 * MIB) < 1.1


def test_dependent_flow_starts_when_its_dependency_ends(ns3_runner: Any) -> None:
    flows = [
        PacketFlow(flow_id=7, src_host=0, dst_host=3, size_bytes=MIB),
        PacketFlow(flow_id=9, src_host=3, dst_host=0, size_bytes=MIB, deps=(7,)),
        PacketFlow(flow_id=11, src_host=1, dst_host=2, size_bytes=0, start_ns=5000),
    ]
    res = _run(ns3_runner, flows)
    assert res[9].start_ns == res[7].finish_ns
    assert res[11].start_ns == res[11].finish_ns == 5000


def test_oversubscribed_uplink_is_the_bottleneck(ns3_runner: Any) -> None:
    fabric = FabricSpec(n_hosts=4, hosts_per_leaf=2, n_spines=1, nic_gbps=GBPS, uplink_gbps=GBPS / 2, hop_latency_ns=1000)
    res = _run(ns3_runner, [PacketFlow(flow_id=0, src_host=0, dst_host=2, size_bytes=2 * MIB)], fabric)
    assert 1.95 < res[0].duration_ns / _ideal_ns(2 * MIB) < 2.1


def test_dctcp_window_floor_keeps_a_sprayed_ring_from_stalling(ns3_runner: Any) -> None:
    """Regression for the ag16-os2-mp stall: ns-3's DCTCP cut an idle queue pair's window below
    one segment, after which the sender never sent the chunks it held (no drop, no RTO)."""
    fabric = FabricSpec(n_hosts=8, hosts_per_leaf=4, n_spines=2, nic_gbps=25, uplink_gbps=25, hop_latency_ns=1000)
    flows = ring_all_gather(fabric, 8 * MIB, channels=2, multipath=True)
    with pytest.raises(ns3_runner.Ns3Error, match="did not finish"):  # the bug, still in ns-3's TcpDctcp
        ns3_runner.simulate(fabric, TransportSpec(congestion_control="dctcp-unfloored"), flows)
    run = ns3_runner.simulate(fabric, TransportSpec(), flows)
    assert len(run.flows) == len(flows) and run.drops == 0
    # 7 ring steps of 1 MiB at 25 Gb/s is the floor on the completion time
    assert run.finish_ns > 7 * _ideal_ns(MIB, 25)


def test_protocol_latency_delays_each_ring_step(ns3_runner: Any) -> None:
    """NCCL's software latency (flowsets.StepLatency -> PacketFlow.delay_ns) is honoured by the
    driver: every step's data starts exactly its delay after its dependency ended, and a ring
    all-gather ends later by about the call latency plus steps x step latency (not exactly: the
    shifted starts change how the two channels share each NIC)."""
    lat = StepLatency.of("Simple")
    bare = ns3_runner.simulate(FABRIC, TransportSpec(), ring_all_gather(FABRIC, MIB, channels=2))
    flows = ring_all_gather(FABRIC, MIB, channels=2, latency=lat)
    slow = ns3_runner.simulate(FABRIC, TransportSpec(), flows)
    res = {r.flow_id: r for r in slow.flows}
    for f in flows:
        ready = max((res[d].finish_ns for d in f.deps), default=f.start_ns)
        assert res[f.flow_id].start_ns == ready + f.delay_ns
    steps = FABRIC.n_hosts - 1
    added = slow.finish_ns - bare.finish_ns
    assert added == pytest.approx(lat.call_ns + steps * lat.step_ns, rel=0.25)
