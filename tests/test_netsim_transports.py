"""ECMP collisions: single-path load matches balls-into-bins; spraying removes it."""

from __future__ import annotations

import numpy as np
import pytest

from common.registry import UnknownVariantError
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork
from netsim.topologies import build_topology
from netsim.transports import TRANSPORTS, build_transport


def _uplink_loads(transport: str, flows: int, seed: int) -> np.ndarray:
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 1, "spines": 16, "link_gbit": 400}, seed=seed)
    topo = build_topology(2, 16, cfg)  # 2 leaves; 16 NICs each -> 16 uplinks
    tr = build_transport(transport, seed=seed)
    load = np.zeros(topo.n_links)
    for f in range(flows):
        links, w = tr.spread(topo.route(f % 16, 16 + f % 16), (f % 16, 16 + f % 16, f // 16))
        np.add.at(load, links, w)
    return load[topo.leaf_up[0]]


def test_single_path_max_load_matches_balls_into_bins():
    rng = np.random.default_rng(1)
    seeds = range(200)
    sim = np.mean([_uplink_loads("single_path", 16, s).max() for s in seeds])
    bins = np.mean([np.bincount(rng.integers(0, 16, 16), minlength=16).max() for _ in range(4000)])
    assert bins == pytest.approx(3.0, abs=0.4)  # known expectation for 16 balls in 16 bins
    assert sim == pytest.approx(bins, rel=0.1)


def test_multipath_and_ideal_spread_evenly():
    ideal = _uplink_loads("ideal", 16, 0)
    assert ideal.max() == pytest.approx(1.0)
    multi = np.mean([_uplink_loads("uccl_multipath", 16, s).max() for s in range(20)])
    assert multi < 1.4
    ethereal = _uplink_loads("ethereal", 16, 0)
    assert ethereal.max() == pytest.approx(1.0)


def test_collisions_slow_cross_leaf_all_reduce():
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 4, "spines": 8}, collectives={"channels": 8})
    t = {}
    for name in ("single_path", "uccl_multipath", "ideal"):
        net = FlowNetwork.build(16, 8, cfg, name)
        h = net.submit_collective("all_reduce", list(range(128)), 1 << 30, 0)
        net.run()
        t[name] = max(net.result(h).values())
    assert t["single_path"] > 1.3 * t["uccl_multipath"]
    assert t["uccl_multipath"] <= 1.1 * t["ideal"]


def test_within_one_leaf_no_gain():
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 4})
    t = {}
    for name in ("single_path", "uccl_multipath"):
        net = FlowNetwork.build(4, 8, cfg, name)
        h = net.submit_collective("all_reduce", list(range(32)), 1 << 28, 0)
        net.run()
        t[name] = max(net.result(h).values())
    assert t["single_path"] == t["uccl_multipath"]


def test_registry_errors():
    with pytest.raises(UnknownVariantError, match=r"valid: .*single_path"):
        build_transport("nope")
    with pytest.raises(ValueError, match="uccl_multipath"):
        build_transport("uccl_multipath", options={"bogus": 1})
    assert {"single_path", "uccl_multipath", "ideal", "ethereal"} <= set(TRANSPORTS.names())
