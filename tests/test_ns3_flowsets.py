"""Flow sets of collectives and the fluid reference model (no ns-3 needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from netsim.collectives import COLLECTIVES
from netsim.ns3.flowsets import (
    COLLECTIVE_FLOWSETS,
    NO_LATENCY,
    StepLatency,
    all_to_all,
    ecmp_spine,
    protocol_steps,
    ring_all_gather,
    ring_all_reduce,
)
from netsim.ns3.fluid import FluidParams, calibrated_params, max_min_rates, simulate_fluid
from netsim.ns3.spec import FabricSpec, PacketFlow

FAB = FabricSpec(n_hosts=4, hosts_per_leaf=2, n_spines=2, nic_gbps=10, uplink_gbps=10, hop_latency_ns=0)


def test_ring_all_reduce_has_2n_minus_2_chained_steps() -> None:
    flows = ring_all_reduce(FAB, 4 << 20, channels=2)
    assert len(flows) == 2 * 3 * 4 * 2
    assert sum(f.size_bytes for f in flows) == 2 * 3 * (4 << 20)  # each rank sends 2(n-1)/n * S
    by_id = {f.flow_id: f for f in flows}
    for f in flows:
        for d in f.deps:  # a step waits for the chunk that arrived at its sender
            assert by_id[d].dst_host == f.src_host and by_id[d].qp == f.qp


def test_all_gather_and_all_to_all_shapes() -> None:
    assert len(ring_all_gather(FAB, 4 << 20)) == 3 * 4
    a2a = all_to_all(FAB, 4 << 20, channels=1)
    assert len(a2a) == 12 and not any(f.deps for f in a2a)
    assert set(COLLECTIVE_FLOWSETS) <= set(COLLECTIVES), "ns-3 times kinds the flow engine names"
    with pytest.raises(ValueError, match="ns3 backend: collective 'broadcast' not supported"):
        protocol_steps("broadcast", 4, 1 << 20)


def test_ecmp_is_deterministic_and_seeded() -> None:
    picks = [ecmp_spine(0, 1, ch, 4, seed=0) for ch in range(64)]
    assert picks == [ecmp_spine(0, 1, ch, 4, seed=0) for ch in range(64)]
    assert set(picks) == {0, 1, 2, 3}
    assert picks != [ecmp_spine(0, 1, ch, 4, seed=1) for ch in range(64)]


def test_multipath_flows_use_every_spine() -> None:
    assert all(f.spines == (0, 1) for f in all_to_all(FAB, 1 << 20, multipath=True))


def test_max_min_rates_progressive_filling() -> None:
    # link 0 (cap 10) carries flows 0,1; link 1 (cap 3) carries flow 1 only
    rates = max_min_rates(np.array([10.0, 3.0]), np.array([[1, 1], [0, 1]]))
    assert rates.tolist() == [7.0, 3.0]


def test_fluid_line_rate_sharing_and_collision() -> None:
    mib = 1 << 20
    ideal = mib * 8 / 10
    one = simulate_fluid(FAB, [PacketFlow(flow_id=0, src_host=0, dst_host=2, size_bytes=mib)])
    assert one[0].duration_ns == pytest.approx(ideal)
    apart = [PacketFlow(flow_id=i, src_host=i, dst_host=2 + i, size_bytes=mib, spines=(i,)) for i in range(2)]
    same = [PacketFlow(flow_id=i, src_host=i, dst_host=2 + i, size_bytes=mib, spines=(0,)) for i in range(2)]
    assert max(r.finish_ns for r in simulate_fluid(FAB, apart)) == pytest.approx(ideal)
    assert max(r.finish_ns for r in simulate_fluid(FAB, same)) == pytest.approx(2 * ideal)


def test_fluid_dependencies_and_calibration_slow_things_down() -> None:
    flows = [
        PacketFlow(flow_id=0, src_host=0, dst_host=1, size_bytes=1 << 20),
        PacketFlow(flow_id=1, src_host=1, dst_host=0, size_bytes=1 << 20, deps=(0,)),
    ]
    raw = simulate_fluid(FAB, flows)
    assert raw[1].start_ns == raw[0].finish_ns
    cal = simulate_fluid(FAB, flows, calibrated_params(FAB))
    assert cal[1].finish_ns > raw[1].finish_ns
    assert calibrated_params(FAB).protocol_efficiency == pytest.approx(8948 / 9002)
    assert FluidParams().protocol_efficiency == 1.0


def test_importing_the_backend_does_not_import_ns3() -> None:
    code = (
        "import sys, netsim.ns3, netsim.ns3.backend, netsim.ns3.runner, netsim.ns3.fluid;"
        "print('ns' in sys.modules, 'cppyy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_step_latency_comes_from_the_engines_protocol_table() -> None:
    from netsim.collectives.protocols import PROTOCOLS

    simple = PROTOCOLS.get("Simple")
    lat = StepLatency.of("Simple", launch_latency_us=2.0)
    assert lat.call_ns == round((simple.base_latency_us + 2.0) * 1e3)
    assert lat.step_ns == round(simple.step_latency_net_us * 1e3)
    with pytest.raises(Exception, match="Simple"):  # unknown names list the valid ones
        StepLatency.of("Fast")


def test_flowsets_put_call_latency_on_first_steps_and_step_latency_on_every_step() -> None:
    lat = StepLatency(call_ns=8400, step_ns=8000)
    ring = ring_all_reduce(FAB, 1 << 20, channels=2, latency=lat)
    assert {f.delay_ns for f in ring if not f.deps} == {8400 + 8000}
    assert {f.delay_ns for f in ring if f.deps} == {8000}
    assert {f.delay_ns for f in all_to_all(FAB, 1 << 20, latency=lat)} == {8400 + 8000}
    assert {f.delay_ns for f in ring_all_reduce(FAB, 1 << 20)} == {0}  # off by default


def test_fluid_ring_grows_by_call_plus_steps_times_step_latency() -> None:
    lat = StepLatency(call_ns=8400, step_ns=8000)
    steps = 2 * (FAB.n_hosts - 1)
    for params in (FluidParams(), calibrated_params(FAB)):
        bare = max(r.finish_ns for r in simulate_fluid(FAB, ring_all_reduce(FAB, 1 << 20, channels=2), params))
        flows = ring_all_reduce(FAB, 1 << 20, channels=2, latency=lat)
        slow = max(r.finish_ns for r in simulate_fluid(FAB, flows, params))
        assert slow - bare == pytest.approx(lat.call_ns + steps * lat.step_ns, abs=2)


def test_fluid_delay_without_deps_shifts_the_start() -> None:
    flows = [PacketFlow(flow_id=0, src_host=0, dst_host=2, size_bytes=1 << 20, start_ns=1000, delay_ns=5000)]
    res = simulate_fluid(FAB, flows)[0]
    assert res.start_ns == 6000
    assert res.duration_ns == pytest.approx((1 << 20) * 8 / 10)


def test_ns3_backend_uses_the_engines_protocol_choice() -> None:
    from netsim.collectives import decompose
    from netsim.config import NetworkConfig
    from netsim.engine import FlowNetwork
    from netsim.ns3.backend import Ns3Network, engine_protocol, engine_protocol_of

    cfg = NetworkConfig.model_validate({"collectives": {"protocol": "auto", "launch_latency_us": 3.0}})
    engine = FlowNetwork.build(8, 1, cfg)
    picked = set()
    for kind in ("all_reduce", "all_gather", "all_to_all"):
        for nbytes in (1 << 10, 1 << 20, 1 << 28):
            name = engine_protocol(kind, 8, nbytes, cfg)
            picked.add(name)
            specs = decompose(kind, range(8), nbytes, 0, topology=engine.topology, transport=engine.transport,
                              config=cfg)
            # the engine's flows start after launch + the chosen protocol's base latency
            lat = StepLatency.from_protocol(engine_protocol_of(kind, 8, nbytes, cfg), 3.0)
            assert specs[0].start_ns == lat.call_ns, (kind, nbytes, name)
    assert len(picked) >= 2  # the sizes span more than one protocol
    net = Ns3Network.build(8, 1, cfg)
    assert engine_protocol("all_reduce", 8, 1 << 28, cfg) == "Simple"
    assert net.step_latency("all_reduce", 8, 1 << 28) == StepLatency.from_protocol(
        engine_protocol_of("all_reduce", 8, 1 << 28, cfg), 3.0)  # NCCL's ring Simple: 8.4 us + 14 us per step
    assert Ns3Network(FAB).step_latency("all_reduce", 4, 1 << 28) == NO_LATENCY
    with pytest.raises(ValueError, match="needs network_config"):
        Ns3Network(FAB, protocol="auto")
