"""Leaf-spine construction: link counts, capacities, routes."""

from __future__ import annotations

import pytest

from common.registry import UnknownVariantError
from netsim.config import NetworkConfig
from netsim.topologies import TOPOLOGIES, build_topology


def test_uplinks_follow_oversubscription_and_units():
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 4, "spines": 8, "oversubscription": 2.0})
    topo = build_topology(8, 8, cfg)
    assert topo.uplinks == 16  # 32 NICs x 400 Gb/s / 2 / 400 Gb/s
    assert topo.capacity_gbps[topo.nic_up[0]] == 50.0  # 400 Gb/s = 50 GB/s
    assert topo.capacity_gbps[topo.nvl_up[0]] == 450.0


def test_routes_intra_host_same_leaf_cross_leaf():
    topo = build_topology(8, 8, NetworkConfig(fabric={"hosts_per_leaf": 4, "spines": 8}))
    assert len(topo.route(0, 1).choices) == 0 and topo.route(0, 1).n_paths == 1
    assert len(topo.route(0, 8).choices) == 0  # hosts 0 and 1 share a leaf
    cross = topo.route(0, 32)
    assert cross.n_paths == 32 * 4 and cross.latency_ns > topo.route(0, 8).latency_ns
    with pytest.raises(ValueError):
        topo.route(0, 0)


def test_rail_optimized_and_shared_nics():
    rail = build_topology(4, 8, NetworkConfig(fabric={"hosts_per_leaf": 4, "rail_optimized": True}))
    assert len(rail.route(0, 8).choices) == 0  # same rail, same group: one leaf
    assert len(rail.route(0, 9).choices) > 0  # cross rail: through a spine
    shared = build_topology(2, 8, NetworkConfig(nic={"per_gpu": False, "nics_per_host": 2}))
    assert len(shared.nic_up) == 4 and len(shared.route(0, 8).fixed) == 4  # NICs + PCIe


def test_unknown_topology_lists_valid():
    with pytest.raises(UnknownVariantError, match="leaf_spine"):
        TOPOLOGIES.get("torus")
