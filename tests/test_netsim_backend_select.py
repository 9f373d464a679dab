"""`network.backend` in a scenario picks the network backend the coordinator drives: one registry,
no switch on the name."""

import pytest

from common.registry import Registry
from netsim.alpha_beta import AlphaBetaNetwork
from netsim.backend import NETWORK_BACKENDS, NetworkBackend, backends, build_network
from netsim.config import ClusterConfig, ConfigError, NetworkConfig, cluster_from_dict
from netsim.engine import FlowNetwork


def cluster(hosts: int, gpus: int, **network) -> ClusterConfig:
    return ClusterConfig(hosts=hosts, gpus_per_host=gpus, network=NetworkConfig.model_validate(network))


def test_flow_is_the_default_backend():
    assert isinstance(build_network(cluster(2, 2)), FlowNetwork)


def test_every_backend_is_a_registration():
    assert isinstance(backends(), Registry) and backends().names() == ["alpha_beta", "flow", "ns3"]
    assert all(issubclass(NETWORK_BACKENDS.get(n), NetworkBackend) for n in backends())


def test_ns3_backend_selected_by_scenario():
    from netsim.ns3.backend import Ns3Network

    assert isinstance(build_network(cluster(4, 1, backend="ns3")), Ns3Network)


def test_alpha_beta_backend_reads_the_network_block():
    net = build_network(cluster(2, 2, backend="alpha_beta", nic={"gbit": 800}))
    assert isinstance(net, AlphaBetaNetwork) and net.nic_gbps == 100.0
    h = net.submit_collective("all_reduce", [0, 2], 1 << 20, 0)  # across hosts: the NIC, no contention
    net.run()
    launch = round(NetworkConfig().collectives.launch_latency_us * 1e3)  # the default, whatever it is
    assert net.result(h) == {0: launch + round((1 << 20) / 100.0), 2: launch + round((1 << 20) / 100.0)}


def test_unknown_backend_is_one_line():
    with pytest.raises(ConfigError, match=r"^s.yaml: network.backend: unknown network backend 'ns4'; "
                                          r"valid: alpha_beta, flow, ns3$"):
        cluster_from_dict({"network": {"backend": "ns4"}}, "s.yaml")


def test_what_ns3_cannot_model_names_the_field():
    with pytest.raises(ValueError, match=r"^network.backend: ns3 models one GPU and one NIC per host"):
        build_network(cluster(2, 8, backend="ns3"))
    with pytest.raises(ValueError, match=r"^network.transport.name: 'ethereal' is not available with backend ns3"):
        build_network(cluster(2, 1, backend="ns3", transport={"name": "ethereal"}))
