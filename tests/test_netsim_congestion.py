"""DCQCN in the flow engine (netsim/congestion.py): off by default, free when nothing collides,
costlier than the fair split when single-path flows collide, bounded queues, checked options."""

from __future__ import annotations

import pytest

from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork
from netsim.transports import build_transport


def _collision(congestion: str, nbytes: int = 16 << 20, pairs=((0, 2), (1, 3))) -> tuple[list[int], FlowNetwork]:
    """Two hosts of 2 GPUs, one per leaf, 2:1 oversubscribed: one 50 GB/s uplink for two 50 GB/s NICs."""
    cfg = NetworkConfig(fabric={"hosts_per_leaf": 1, "oversubscription": 2.0, "spines": 1},
                        collectives={"p2p_channels_per_peer": 1},
                        transport={"name": "single_path",
                                   "options": {} if congestion == "none" else {"congestion": congestion}})
    net = FlowNetwork.build(2, 2, cfg)
    hs = [net.submit_collective("send_recv", [a, b], nbytes, 0) for a, b in pairs]
    net.run()
    return [max(net.result(h).values()) for h in hs], net


def test_default_is_max_min_at_once():
    assert build_transport("single_path").congestion == "none"
    _, net = _collision("none")
    assert net.cc is None and net.stats.rate_recomputes == 1


def test_a_flow_alone_runs_at_line_rate_under_dcqcn():
    """No queue ever builds (arrival = capacity), so no mark, no cut: the max-min time to the ns."""
    alone_none, _ = _collision("none", pairs=((0, 2),))
    alone_dcqcn, net = _collision("dcqcn", pairs=((0, 2),))
    assert alone_dcqcn == alone_none
    assert net.cc is not None and net.cc.queue_peak.max() == 0.0


def test_colliding_flows_pay_more_than_the_fair_split():
    fair, _ = _collision("none")
    dcqcn, net = _collision("dcqcn")
    assert net.cc is not None
    assert min(dcqcn) > max(fair), "DCQCN's cut-and-recover loop leaves the shared uplink under-driven at times"
    assert max(dcqcn) < 2 * max(fair), "but it converges: far from one flow at a time"
    kmax = net.cc.kmax[net.cc.switch].max()
    assert 0 < net.cc.queue_peak.max() <= 2 * kmax  # a queue builds; marks above K_max keep it bounded
    again, _ = _collision("dcqcn")
    assert again == dcqcn  # deterministic


def test_bad_congestion_options_fail_at_load():
    with pytest.raises(ValueError, match="unknown congestion model 'x'"):
        build_transport("single_path", options={"congestion": "x"})
    with pytest.raises(ValueError, match="unknown option"):
        build_transport("single_path", options={"congestion": "dcqcn", "congestion_options": {"bogus": 1}})
    with pytest.raises(ValueError, match="need a congestion model"):
        build_transport("single_path", options={"congestion_options": {"g": 0.1}})
