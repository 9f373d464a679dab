"""Uneven all-to-all (all-to-all-v): a traffic matrix gives each (src, dst) pair its own bytes."""

from __future__ import annotations

import pytest

from netsim.collectives.base import decompose
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork


def _net(hosts: int = 2, gpus: int = 2) -> FlowNetwork:
    # tuner "fixed": every pair gets p2p_channels_per_peer connections (NCCL's NVLink split is tested elsewhere)
    return FlowNetwork.build(hosts, gpus, NetworkConfig(collectives={"tuner": "fixed"}))


def _flows(net, matrix, nbytes=1 << 20):
    return decompose("all_to_all", [0, 1, 2, 3], nbytes, 0, topology=net.topology, transport=net.transport,
                     config=net.config, matrix=matrix)


def test_one_flow_set_per_pair_with_its_bytes():
    net = _net()  # ranks 0, 1 on host 0; 2, 3 on host 1
    k = net.config.collectives.p2p_channels_per_peer
    mb = 1 << 20
    m = [[0, 100 * mb, 0, 300 * mb], [50 * mb, 0, 0, 0], [0, 0, 0, 0], [70 * mb, 80 * mb, 90 * mb, 0]]
    flows = _flows(net, m)
    moved: dict[tuple[int, int], float] = {}
    for f in flows:
        moved[f.ranks] = moved.get(f.ranks, 0.0) + f.nbytes
    assert len(flows) == 6 * k, "pairs with zero bytes and the diagonal move nothing"
    assert set(moved) == {(i, j) for i, row in enumerate(m) for j, b in enumerate(row) if b and i != j}
    # wire bytes = matrix bytes x a factor of the link kind (NVLink inside a host, the NIC across)
    assert moved[(0, 1)] / moved[(1, 0)] == pytest.approx(2.0)
    assert moved[(0, 3)] / moved[(3, 0)] == pytest.approx(300 / 70)
    assert moved[(3, 0)] / moved[(3, 1)] == pytest.approx(70 / 80)


def test_uniform_matrix_equals_the_even_all_to_all():
    n, size = 4, 1 << 24
    even = _net()
    h = even.submit_collective("all_to_all", list(range(n)), size, 0)
    even.run()
    mat = _net()
    g = mat.submit_collective("all_to_all", list(range(n)), size, 0, matrix=[[size // n] * n] * n)
    mat.run()
    assert mat.result(g) == even.result(h)


def test_skewed_matrix_takes_longer_than_even_at_the_same_total():
    """Everyone sends most to rank 0 (a hot expert): its incoming links are the bottleneck."""
    n, size = 4, 1 << 26
    even = _net()
    h = even.submit_collective("all_to_all", list(range(n)), size, 0)
    even.run()
    hot = [[size * 7 // 10, size // 10, size // 10, size // 10]] * n
    skew = _net()
    g = skew.submit_collective("all_to_all", list(range(n)), size, 0, matrix=hot)
    skew.run()
    assert max(skew.result(g).values()) > 1.5 * max(even.result(h).values())


def test_matrix_errors_are_one_line():
    net = _net()
    with pytest.raises(ValueError, match="must be 4 x 4"):
        _flows(net, [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=">= 0 bytes"):
        _flows(net, [[0, -1, 0, 0]] + [[0] * 4] * 3)
    with pytest.raises(ValueError, match="only meaningful for all_to_all"):
        decompose("all_reduce", [0, 1], 1 << 20, 0, topology=net.topology, transport=net.transport,
                  config=net.config, matrix=[[0, 1], [1, 0]])


def test_ns3_refuses_an_uneven_matrix_and_takes_a_uniform_one():
    from netsim.ns3.backend import Ns3Network
    from netsim.ns3.spec import FabricSpec

    net = Ns3Network(FabricSpec(n_hosts=4, hosts_per_leaf=2, n_spines=2, nic_gbps=10, uplink_gbps=10,
                                hop_latency_ns=1000))
    with pytest.raises(ValueError, match="uneven all_to_all"):
        net.submit_collective("all_to_all", [0, 1, 2, 3], 1 << 20, matrix=[[0, 3, 1, 1]] * 4)
    assert net.submit_collective("all_to_all", [0, 1, 2, 3], 1 << 20, matrix=[[1 << 18] * 4] * 4) == 0
