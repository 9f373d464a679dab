"""NCCL's tuner (netsim.collectives.tuner) and the NVLink CTA model against NCCL 2.28's own log on 2x H200."""

from __future__ import annotations

import pytest

from netsim.collectives.tuner import Graph, choose, enabled_set, nccl_table, ring_graph_intra
from netsim.config import ConfigError, NetworkConfig, cluster_from_dict
from netsim.engine import FlowNetwork


def _g2() -> Graph:
    ch, bw = ring_graph_intra(18)
    return Graph(ch, bw, bw, 1, 2, tree_bw_intra_gbps=2 * bw)


def test_ring_graph_of_nv18_is_what_nccl_printed():
    assert ring_graph_intra(18) == (12, 30.0)  # "Pattern 4, ... nChannels 12, bw 30.000000/30.000000"


def test_table_matches_the_shipped_nccl_log():
    """docs/data/netsim/nccl_h200x2_log.txt.gz, rank 0's tuning table (latency us / algbw GB/s)."""
    ar = nccl_table("all_reduce", _g2())
    want = {("tree", "LL"): (8.0, 61.1), ("tree", "LL128"): (16.5, 180.6), ("tree", "Simple"): (16.4, 232.2),
            ("ring", "LL"): (7.8, 141.0), ("ring", "LL128"): (17.8, 331.2), ("ring", "Simple"): (15.2, 360.0)}
    for k, (lat, bw) in want.items():
        assert ar[k] == pytest.approx((lat, bw), abs=0.051), k
    ag = nccl_table("all_gather", _g2())
    assert ag[("ring", "LL")] == pytest.approx((7.2, 282.0)) and ag[("ring", "Simple")] == pytest.approx((11.8, 720.0))
    assert ("tree", "Simple") not in ag  # tree is all-reduce only


@pytest.mark.parametrize(("size", "proto", "channels"), [
    (1024, "LL", 1), (16384, "LL", 2), (65536, "LL", 8), (1 << 20, "LL", 24), (4 << 20, "Simple", 24),
    (1 << 30, "Simple", 24)])
def test_choice_matches_the_log(size, proto, channels):
    """The log's 'AllReduce: N Bytes -> Algo RING proto P channel{Lo..Hi}' lines (256 KiB: the log ran
    22 channels, NCCL's scheduler trimming after the tuner; not modelled)."""
    c = choose("all_reduce", size, _g2(), comm_channels=24)
    assert (c.algorithm, c.protocol, c.channels) == ("ring", proto, channels)


def test_overrides_follow_nccl_syntax():
    assert enabled_set("^LL128", "all_reduce", ("LL", "LL128", "Simple")) == {"LL", "Simple"}
    assert enabled_set("ring;allreduce:tree", "all_reduce", ("tree", "ring")) == {"tree"}
    assert enabled_set("ring;allreduce:tree", "all_gather", ("tree", "ring")) == {"ring"}
    assert choose("all_reduce", 1024, _g2(), comm_channels=24, proto_spec="Simple").protocol == "Simple"
    with pytest.raises(ValueError, match="unknown element 'LL256'"):
        enabled_set("LL256", "all_reduce", ("LL", "LL128", "Simple"))


def test_scenario_override_is_checked_at_load():
    with pytest.raises(ConfigError, match="nccl_proto"):
        cluster_from_dict({"network": {"collectives": {"nccl_proto": "LL256"}}}, "s.yaml")
    c = cluster_from_dict({"network": {"collectives": {"nccl_algo": "tree"}}}, "s.yaml")
    net = FlowNetwork.build(2, 4, c.network)
    h = net.submit_collective("all_reduce", list(range(8)), 1 << 20, 0)
    assert net.choice_of(h).startswith("tree/")


def test_more_channels_more_bandwidth_on_nvlink():
    """The CTA model: all-to-all at 1 GiB runs 32 p2p channels (NCCL's split: parts over 16 MiB double
    them) against 16 at 256 MiB, so its busbw rises, as measured (274 -> 329 GB/s)."""
    bus = {}
    for size in (256 << 20, 1 << 30):
        net = FlowNetwork.build(1, 2, NetworkConfig())
        h = net.submit_collective("all_to_all", [0, 1], size, 0)
        net.run()
        assert net.choice_of(h) == ("p2p/Simple/16" if size < 1 << 30 else "p2p/Simple/32")
        bus[size] = size / 2 / max(net.result(h).values())
    assert bus[1 << 30] > 1.2 * bus[256 << 20]


def test_fixed_tuner_keeps_configured_channels():
    net = FlowNetwork.build(1, 8, NetworkConfig(collectives={"tuner": "fixed", "channels": 5}))
    h = net.submit_collective("all_reduce", list(range(8)), 1 << 30, 0)
    assert net.choice_of(h).endswith("/5")
