"""The ns-3 backend's collective API, its worker process, and a cross-validation subset."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from typing import Any

import pytest

from netsim.ns3.backend import Ns3Network
from netsim.ns3.flowsets import ring_all_reduce
from netsim.ns3.fluid import calibrated_params, simulate_fluid
from netsim.ns3.spec import FabricSpec, PacketFlow, TransportSpec

FAB = FabricSpec(n_hosts=4, hosts_per_leaf=2, n_spines=2, nic_gbps=10, uplink_gbps=10, hop_latency_ns=1000)


def test_build_from_network_config() -> None:
    from netsim.config import NetworkConfig

    cfg = NetworkConfig.model_validate(
        {"backend": "ns3", "transport": {"name": "uccl_multipath"}, "nic": {"gbit": 100},
         "fabric": {"hosts_per_leaf": 2, "spines": 2, "link_gbit": 100, "oversubscription": 2}}
    )  # fmt: skip
    net = Ns3Network.build(4, 1, cfg)
    assert net.multipath and net.fabric.nic_gbps == 100 and net.fabric.uplink_gbps == 50
    with pytest.raises(ValueError, match="one GPU and one NIC per host"):
        Ns3Network.build(4, 8, cfg)
    assert net.supports("all_to_all") and not net.supports("broadcast")


def test_unknown_collective_and_bad_ranks_are_one_line_errors() -> None:
    net = Ns3Network(FAB)
    with pytest.raises(ValueError, match="not supported; valid: all_gather, all_reduce, all_to_all"):
        net.submit_collective("gather", [0, 1], 1 << 20)
    with pytest.raises(ValueError, match="distinct hosts"):
        net.submit_collective("all_reduce", [0, 0], 1 << 20)


def test_worker_reports_bad_input_without_traceback() -> None:
    bad = {
        "fabric": asdict(FAB),
        "transport": asdict(TransportSpec()),
        "flows": [PacketFlow(flow_id=0, src_host=0, dst_host=9, size_bytes=1).to_json()],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "netsim.ns3.worker"], input=json.dumps(bad), capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"error": "flow 0: host 9 outside 0..3"}
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def ns3_loaded() -> None:
    pytest.importorskip("ns", reason="ns-3 bindings not installed (pip install -e .[ns3])")
    from netsim.ns3 import runner

    runner._ns()


@pytest.mark.ns3
def test_collective_api_agrees_with_fluid_model(ns3_loaded: Any) -> None:
    net = Ns3Network(FAB, channels=2)
    h = net.submit_collective("all_reduce", [0, 1, 2, 3], 2 << 20, start_ns=[0, 0, 0, 0])
    assert net.run() == [h]
    ends = net.result(h)
    assert sorted(ends) == [0, 1, 2, 3]
    fluid = simulate_fluid(FAB, ring_all_reduce(FAB, 2 << 20, channels=2), calibrated_params(FAB))
    want = max(r.finish_ns for r in fluid)
    assert max(ends.values()) == pytest.approx(want, rel=0.10)
    assert net.last_run.drops == 0
    assert net.next_event_ns() is None


@pytest.mark.ns3
def test_late_rank_delays_the_collective(ns3_loaded: Any) -> None:
    net = Ns3Network(FAB)
    h = net.submit_collective("all_gather", [0, 1, 2, 3], 1 << 20)
    net.run()
    on_time = net.result(h)
    late = Ns3Network(FAB)
    h2 = late.submit_collective("all_gather", [0, 1, 2, 3], 1 << 20, {0: 0, 1: 0, 2: 0, 3: 500_000})
    with pytest.raises(RuntimeError, match="has not finished"):
        late.result(h2)
    late.run()
    delayed = late.result(h2)
    assert max(delayed.values()) > max(on_time.values()) + 400_000


@pytest.mark.ns3
@pytest.mark.slow
def test_crossval_subset_within_acceptance(ns3_loaded: Any, repo_root: Any) -> None:
    sys.path.insert(0, str(repo_root / "benchmarks"))
    from netsim_crossval import CI_SUBSET, SCENARIOS, run_scenario

    rows = [run_scenario(s, 16.0) for s in SCENARIOS if s.name in CI_SUBSET]
    assert len(rows) == len(CI_SUBSET)
    for r in rows:
        assert abs(r.err_cal_pct) <= 15.0, r
        assert abs(r.engine_err_pct) <= 15.0, r  # netsim's own engine, the one the simulator uses
        assert r.drops == 0
