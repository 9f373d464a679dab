"""Scenario network schema: defaults, strictness, torch-free loading, coordinator API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netsim.config import ConfigError, NetworkConfig, cluster_from_dict, load_cluster
from netsim.coordinator_api import build_network


def test_defaults_are_an_h100_cluster():
    cfg = NetworkConfig()
    assert cfg.intra_host.nvlink_gbps_per_direction == 450 and cfg.nic.gbit == 400 and cfg.nic.per_gpu
    assert cfg.transport.name == "single_path" and cfg.backend == "flow"


def test_unknown_field_is_one_line_naming_file_and_field():
    with pytest.raises(ConfigError, match=r"^s.yaml: network.fabric.spinez: unknown field$"):
        cluster_from_dict({"hosts": 2, "network": {"fabric": {"spinez": 3}}}, "s.yaml")


def test_load_shipped_scenario(tmp_path):
    c = load_cluster("scenarios/leafspine-16x8-h100.yaml")
    assert c.world_size == 128 and c.network.fabric.hosts_per_leaf == 4
    with pytest.raises(ConfigError, match="cannot read"):
        load_cluster(tmp_path / "missing.yaml")


def test_netsim_never_imports_torch():
    code = ("import sys, netsim.engine, netsim.coordinator_api, phantora.commands.netbench; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_network_from_scenario_like_object():
    class S:
        hosts, gpus_per_host, network = 2, 2, {"transport": {"name": "ideal"}}

    net = build_network(S())
    assert net.transport_name == "ideal"
    h = net.submit_collective("all_reduce", [0, 1, 2, 3], 1 << 20, {0: 0, 1: 10, 2: 0, 3: 0}, tag="k")
    done = []
    while (t := net.next_event_ns()) is not None:
        done += net.run_until(t)
    assert done == [h] and set(net.result(h)) == {0, 1, 2, 3}


def test_coordinator_adapter_uses_flow_engine():
    from interpose.protocol import CollectiveCall
    from phantora.coordinator import netsim_timer
    from phantora.scenario import load_scenario

    timer = netsim_timer.build(load_scenario("scenarios/h200x2.yaml"), 2)
    assert timer is not None
    timer.submit(CollectiveCall(key="g#0", kind="all_reduce", group="g", ranks=(0, 1), nbytes=1 << 26,
                                dtype="float32"), 100.0)
    timer.submit(CollectiveCall(key="p2p#0", kind="send", group="p2p", ranks=(0, 1), nbytes=1 << 20,
                                dtype="float32"), 100.0)
    done = []
    while (t := timer.next_event_us()) is not None:
        done += timer.pop_until(t)
    assert sorted(c.key for c in done) == ["g#0", "p2p#0"]
    assert all(c.end_us > 100.0 for c in done)
