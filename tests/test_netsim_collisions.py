"""ECMP collision statistics (netsim/collisions.py) on UCCL's testbed scenario: what single-path
hashing puts on the spine tier, against what one connection can push."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.collisions import fabric_collisions, fabric_links
from netsim.config import load_cluster
from netsim.topologies import build_topology
from netsim.transports import build_transport

TESTBED = Path(__file__).resolve().parent.parent / "scenarios" / "uccl-testbed-6x8-h100.yaml"


def _collisions(hosts: int, transport: str, seed: int = 0):
    base = load_cluster(TESTBED)
    cfg = base.network.model_copy(deep=True)
    cfg.seed = seed
    topo = build_topology(hosts, base.gpus_per_host, cfg)
    tr = build_transport(transport, seed=seed, options={})
    return fabric_collisions("all_reduce", list(range(hosts * base.gpus_per_host)), 256 << 20,
                             topology=topo, transport=tr, config=cfg), topo


def test_within_one_rack_nothing_reaches_the_spine_tier():
    """3 hosts under one leaf: no ECMP choice, so no transport can gain there (UCCL: no gain in a rack)."""
    for tr in ("single_path", "uccl_multipath"):
        r, topo = _collisions(3, tr)
        assert fabric_links(topo).any()
        assert r.links_used == 0 and r.worst_overload == 0.0


def test_every_ring_crossing_is_counted_once_per_tier():
    """16 ring channels cross between the racks twice (one each way), each crossing an uplink and a
    spine downlink: 64 flow-link incidences on the spine tier, however they are hashed."""
    for seed in (0, 3):
        r, _ = _collisions(6, "single_path", seed)
        assert sum(k * v for k, v in r.per_link.items()) == 16 * 2 * 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spraying_leaves_no_spine_link_overloaded_and_hashing_does(seed):
    """uccl_multipath spreads every connection over all 72 paths (each spine-tier link then carries
    all 16 flows of its direction at a small weight); single-path stacks up to a few connections on
    one link, and a link carrying three of them (3 x the per-connection cap > 50 GB/s) is overloaded."""
    multi, _ = _collisions(6, "uccl_multipath", seed)
    single, _ = _collisions(6, "single_path", seed)
    assert multi.worst_overload < 0.5 and multi.overloaded_links == 0
    assert max(single.per_link) >= 3
    assert single.overloaded_links >= 1
    assert single.worst_overload == pytest.approx(max(single.per_link) * single.demand_gbps / 50.0)
