"""`network.backend` in a scenario picks the network backend the coordinator drives."""

from types import SimpleNamespace

from netsim.config import NetworkConfig
from netsim.coordinator_api import build_network
from netsim.engine import FlowNetwork


def test_flow_is_the_default_backend():
    net = build_network(SimpleNamespace(hosts=2, gpus_per_host=2, network=NetworkConfig()))
    assert isinstance(net, FlowNetwork)


def test_ns3_backend_selected_by_scenario():
    from netsim.ns3.backend import Ns3Network

    cfg = NetworkConfig.model_validate({"backend": "ns3"})
    net = build_network(SimpleNamespace(hosts=4, gpus_per_host=1, network=cfg))
    assert isinstance(net, Ns3Network)
