"""Three-tier fat-tree: path counts, bisection, cross-pod path length, ECMP collisions at the core."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork
from netsim.topologies import build_topology


def _cfg(**fabric) -> NetworkConfig:
    base = {"kind": "fat_tree", "hosts_per_leaf": 2, "spines": 4, "leaves_per_pod": 2, "cores": 4}
    return NetworkConfig(fabric={**base, **fabric})


def test_tiers_sizes_and_path_counts():
    topo = build_topology(8, 4, _cfg())  # 8 hosts / 2 per leaf = 4 leaves, 2 pods
    assert (topo.n_leaves, topo.n_pods) == (4, 2)
    assert topo.uplinks == 8 and topo.parallel == 2  # 8 NICs x 50 GB/s / 50 GB/s, over 4 aggs
    assert topo.agg_uplinks == 4 and topo.pod_uplinks == 16  # 2 leaves x 8 uplinks, 1:1
    same_pod = topo.route(0, 2 * 4)  # host 0 -> host 2: leaf 0 -> leaf 1, pod 0
    cross_pod = topo.route(0, 4 * 4)  # host 0 -> host 4: leaf 0 -> leaf 2, pod 1
    assert same_pod.n_paths == topo.uplinks * topo.parallel == 16
    assert cross_pod.n_paths == topo.uplinks * topo.agg_uplinks * topo.parallel == 64
    assert len(np.unique(cross_pod.choices, axis=0)) == cross_pod.n_paths  # all distinct


def test_cross_pod_path_length_and_latency():
    cfg = _cfg()
    topo = build_topology(8, 4, cfg)
    r = topo.route(0, 4 * 4)
    names = [topo.link_names[x] for x in r.choices[0]]
    assert [n.split("_")[1][:2] for n in names] == ["up", "up", "dn", "dn"]
    assert names[0].startswith("leaf0") and names[1].startswith("pod0") and names[2].startswith("pod1")
    assert names[3].startswith("leaf2")
    fab, nic = cfg.fabric, cfg.nic
    assert r.latency_ns == 2 * nic.latency_ns + 5 * fab.hop_latency_ns
    assert topo.route(0, 2 * 4).latency_ns == 2 * nic.latency_ns + 3 * fab.hop_latency_ns
    # core hop pair meets at one core: pod link k up and down
    k_up = int(names[1].rsplit("up", 1)[1])
    assert names[2] == f"pod1_dn{k_up}"


@pytest.mark.parametrize("core_over", [1.0, 2.0, 4.0])
def test_bisection_follows_core_oversubscription(core_over):
    topo = build_topology(8, 4, _cfg(core_oversubscription=core_over))
    leaf_up = topo.capacity_gbps[topo.leaf_up[: topo.leaves_per_pod]].sum()
    pod_up = topo.capacity_gbps[topo.pod_up[0]].sum()
    assert pod_up == pytest.approx(leaf_up / core_over)
    # half the hosts (pod 0) sending to the other half with ideal spraying: the core is the limit
    net = FlowNetwork.build(8, 4, _cfg(core_oversubscription=core_over), "ideal")
    size = 1 << 26
    hs = [net.submit_collective("send_recv", [g, g + 16], size, 0) for g in range(16)]
    net.run()
    end = max(max(net.result(h).values()) for h in hs)
    bw = 16 * size / end  # bytes/ns aggregate across the bisection
    assert bw <= pod_up * 1.001
    assert bw == pytest.approx(min(16 * 50.0, pod_up), rel=0.05)


def test_ecmp_collides_at_core_multipath_does_not():
    """Single-path ECMP hashes some cross-pod connections onto one core link; spraying evens them."""
    cfg = _cfg(core_oversubscription=4.0)  # 4 pod uplinks for 8 NICs: collisions must show
    ends = {}
    for t in ("single_path", "ideal"):
        net = FlowNetwork.build(8, 4, cfg, t)
        hs = [net.submit_collective("send_recv", [g, g + 16], 1 << 24, 0) for g in range(16)]
        net.run()
        ends[t] = max(max(net.result(h).values()) for h in hs)
    assert ends["single_path"] > 1.2 * ends["ideal"]


def test_fat_tree_ring_all_reduce_runs():
    cfg = _cfg()
    net = FlowNetwork.build(8, 4, cfg)
    h = net.submit_collective("all_reduce", list(range(32)), 1 << 24, 0)
    net.run()
    assert max(net.result(h).values()) > 0


def test_scenario_fields_validate():
    from netsim.config import ConfigError, cluster_from_dict

    ok = cluster_from_dict({"hosts": 8, "network": {"fabric": {"kind": "fat_tree", "cores": 2}}})
    assert ok.network.fabric.kind == "fat_tree" and ok.network.fabric.cores == 2
    with pytest.raises(ConfigError, match=r"s\.yaml: network\.fabric\.core_oversubscription"):
        cluster_from_dict({"network": {"fabric": {"core_oversubscription": 0.5}}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"network\.fabric\.kind"):
        cluster_from_dict({"network": {"fabric": {"kind": "torus"}}}, "s.yaml")
