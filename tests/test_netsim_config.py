"""Scenario network schema: defaults, strictness, torch-free loading, building the backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netsim.backend import build_network
from netsim.config import ClusterConfig, ConfigError, NetworkConfig, cluster_from_dict, load_cluster


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
    code = ("import sys, netsim.engine, netsim.backend, phantora.commands.netbench; netsim.backend.backends(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_network_from_a_cluster_config():
    net = build_network(ClusterConfig.model_validate({"hosts": 2, "gpus_per_host": 2,
                                                      "network": {"transport": {"name": "ideal"}}}))
    assert net.transport_name == "ideal"
    h = net.submit_collective("all_reduce", [0, 1, 2, 3], 1 << 20, {0: 0, 1: 10, 2: 0, 3: 0}, tag="k")
    done = []
    while (t := net.next_event_ns()) is not None:
        done += net.run_until(t)
    assert done == [h] and set(net.result(h)) == {0, 1, 2, 3}


def test_a_scenario_is_a_cluster_config():
    """One schema: phantora's Scenario inherits the shape and network fields netsim reads."""
    from phantora.scenario import Scenario, load_scenario

    assert issubclass(Scenario, ClusterConfig)
    s = load_scenario("scenarios/leafspine-16x8-h100.yaml")
    assert s.network == load_cluster("scenarios/leafspine-16x8-h100.yaml").network
    assert build_network(s).transport_name == s.network.transport.name
