"""Rail-aligned routing (NCCL PXN) on rail-optimized fabrics."""

from __future__ import annotations

import pytest

from netsim.collectives import decompose
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork
from netsim.topologies import build_topology
from netsim.transports import build_transport


def _links(hosts: int, gpus: int, kind: str, pxn: bool, hpl: int) -> set[str]:
    cfg = NetworkConfig(fabric={"hosts_per_leaf": hpl, "rail_optimized": True}, collectives={"pxn": pxn})
    topo = build_topology(hosts, gpus, cfg)
    flows = decompose(kind, list(range(hosts * gpus)), 1 << 24, 0, topology=topo,
                      transport=build_transport("single_path"), config=cfg)
    return {topo.link_names[x] for f in flows for x in f.links}


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "all_to_all"])
def test_rail_aligned_traffic_crosses_no_spine(kind):
    """Rails each have their own leaf (all hosts in one group): with PXN nothing reaches a spine."""
    with_pxn = _links(4, 8, kind, pxn=True, hpl=4)
    without = _links(4, 8, kind, pxn=False, hpl=4)
    assert not any(n.startswith("leaf") for n in with_pxn)
    assert any(n.startswith("leaf") for n in without)  # cross-rail hops do go up to a spine
    assert any(n.startswith("nic_up") for n in with_pxn)  # but still over the network


def test_pxn_hop_goes_over_nvlink_to_the_peer_rail():
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 4, "rail_optimized": True})
    net = FlowNetwork.build(2, 8, cfg)
    flows = decompose("send_recv", [3, 8 + 5], 1 << 20, 0, topology=net.topology,
                      transport=net.transport, config=cfg)
    names = {net.topology.link_names[x] for f in flows for x in f.links}
    # GPU 3 -> NVLink -> GPU 5 (rail 5) -> nic 5 -> leaf (0, 5) -> nic 13 -> GPU 13
    assert names == {"nvl_up3", "nvl_dn5", "nic_up5", "nic_dn13"}


def test_pxn_off_or_not_rail_optimized_is_direct():
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 4, "rail_optimized": False})
    topo = build_topology(2, 8, cfg)
    flows = decompose("send_recv", [3, 13], 1 << 20, 0, topology=topo, transport=build_transport("single_path"),
                      config=cfg)
    names = {topo.link_names[x] for f in flows for x in f.links}
    assert "nic_up3" in names and not any(n.startswith("nvl") for n in names)


def test_rail_aligned_ring_is_not_slower_on_a_blocking_spine():
    """With a 4:1 oversubscribed leaf, cross-rail ring hops contend for few uplinks; PXN avoids them."""
    ends = {}
    for pxn in (True, False):
        cfg = NetworkConfig(fabric={"hosts_per_leaf": 4, "rail_optimized": True, "oversubscription": 4.0},
                            collectives={"pxn": pxn})
        net = FlowNetwork.build(4, 8, cfg)
        h = net.submit_collective("all_reduce", list(range(32)), 1 << 28, 0)
        net.run()
        ends[pxn] = max(net.result(h).values())
    assert ends[True] <= ends[False]
