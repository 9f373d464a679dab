"""Analytic checks of the flow engine, max-min sharing, and event ordering."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork, simulate_collectives
from netsim.events import EventQueue, Priority
from netsim.flows import FlowSpec
from netsim.maxmin import max_min_rates


def _net(hosts: int = 1, gpus: int = 2, **kw) -> FlowNetwork:
    return FlowNetwork.build(hosts, gpus, NetworkConfig(**kw))


def test_simultaneous_events_ordered_by_priority_then_seq():
    q = EventQueue()
    q.push(5, Priority.ADMIT, "admit-a")
    q.push(5, Priority.FLOW_DONE, "done")
    q.push(5, Priority.ADMIT, "admit-b")
    q.push(3, Priority.ADMIT, "early")
    q.push(5, Priority.COLLECTIVE_DONE, "coll")
    assert [q.pop()[2] for _ in range(5)] == ["early", "done", "coll", "admit-a", "admit-b"]


def test_one_flow_gets_line_rate():
    net = _net()
    link = net.topology.nvl_up[0]
    cap = net.capacity[link]
    h = net.submit_flows([FlowSpec(np.array([link]), np.array([1.0]), cap * 1e6, 0, (0,))])
    net.run()
    assert net.result(h)[0] == 1_000_000  # bytes / (bytes/ns)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_n_flows_share_a_link_equally(n):
    net = _net()
    link = net.topology.nvl_up[0]
    cap = net.capacity[link]
    hs = [net.submit_flows([FlowSpec(np.array([link]), np.array([1.0]), cap * 1e5, 0, (i,))]) for i in range(n)]
    net.run()
    assert all(net.result(h)[i] == pytest.approx(n * 100_000, abs=1) for i, h in enumerate(hs))


def test_maxmin_weighted_and_bottlenecks():
    # flow 0 on links 0,1; flow 1 on link 1; flow 2 on link 0 at weight 0.5. caps 10, 4
    rates = max_min_rates(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), np.array([1, 1, 1, 0.5]), 3,
                          np.array([10.0, 4.0]))
    assert rates[0] == pytest.approx(2.0) and rates[1] == pytest.approx(2.0)
    assert rates[2] == pytest.approx(16.0)  # 0.5 * r + 2 = 10


def test_ring_all_reduce_matches_formula():
    """t = launch + 2(n-1)/n·S/B_eff + latency terms, with B_eff the efficiency-capped NVLink rate."""
    cfg = NetworkConfig(intra_host={"model": "efficiency"}, collectives={"tuner": "fixed", "launch_latency_us": 10})
    n, size = 8, 1 << 30
    net = FlowNetwork.build(1, n, cfg)
    h = net.submit_collective("all_reduce", list(range(n)), size, 0, protocol="Simple")
    net.run()
    t = max(net.result(h).values())
    bw = cfg.intra_host.nvlink_gbps_per_direction * cfg.collectives.nvlink_efficiency["all_reduce"]
    bw_term = 2 * (n - 1) / n * size / bw
    lat = (cfg.collectives.launch_latency_us + 8.4) * 1e3 + 2 * (n - 1) * (4.0e3 + cfg.intra_host.nvlink_latency_ns)
    assert t == pytest.approx(bw_term + lat, rel=1e-6, abs=2)


def test_network_ring_limited_by_nic():
    cfg = NetworkConfig()
    cfg.collectives.channels = 1
    net = FlowNetwork.build(2, 1, cfg)  # two hosts, one GPU each: ring over NICs
    h = net.submit_collective("all_reduce", [0, 1], 1 << 30, 0, protocol="Simple")
    net.run()
    t = max(net.result(h).values())
    assert t == pytest.approx((1 << 30) / (cfg.nic.gbit / 8), rel=0.01)


def test_late_rank_delays_start_and_contention_slows():
    net = _net(2, 2)
    a = net.submit_collective("all_gather", [0, 1, 2, 3], 1 << 26, {0: 0, 1: 0, 2: 0, 3: 50_000})
    net.run()
    alone = max(net.result(a).values())
    assert min(net.result(a).values()) > 50_000
    net2 = _net(2, 2)
    b = net2.submit_collective("all_gather", [0, 1, 2, 3], 1 << 26, {0: 0, 1: 0, 2: 0, 3: 50_000})
    net2.submit_collective("all_to_all", [0, 1, 2, 3], 1 << 28, 0)
    net2.run()
    assert max(net2.result(b).values()) > alone


def test_incremental_api_and_determinism():
    def go():
        net = _net(4, 2, fabric={"hosts_per_leaf": 1, "spines": 2})
        hs = [net.submit_collective("all_reduce", list(range(8)), 1 << 24, i * 1000) for i in range(3)]
        hs.append(net.submit_collective("send_recv", [0, 7], 1 << 20, 0))
        done = []
        while (t := net.next_event_ns()) is not None:
            done += net.run_until(t)
        return [net.result(h) for h in hs], done
    r1, d1 = go()
    r2, d2 = go()
    assert r1 == r2 and d1 == d2 and sorted(d1) == [0, 1, 2, 3]


def test_result_before_done_raises():
    net = _net()
    h = net.submit_collective("all_reduce", [0, 1], 1 << 20, 0)
    with pytest.raises(RuntimeError):
        net.result(h)


def test_simulate_collectives_batch_and_single_rank():
    res = simulate_collectives([{"kind": "broadcast", "ranks": [0, 1, 2], "nbytes": 1 << 20},
                                {"kind": "all_reduce", "ranks": [3], "nbytes": 1 << 20}], hosts=1, gpus_per_host=4)
    assert set(res[0]) == {0, 1, 2} and set(res[1]) == {3}
    assert res[1][3] < res[0][0]


def test_tree_all_reduce_runs_and_differs_from_ring():
    out = {}
    for algo in ("ring", "tree"):
        net = _net(8, 1, fabric={"hosts_per_leaf": 8})
        h = net.submit_collective("all_reduce", list(range(8)), 1 << 16, 0, algorithm=algo)
        net.run()
        out[algo] = max(net.result(h).values())
    assert out["tree"] < out["ring"]  # small message: fewer latency steps


@pytest.mark.parametrize("kind", ["gather", "scatter", "barrier", "reduce", "broadcast", "all_to_all"])
def test_every_coordinator_kind_completes_for_all_ranks(kind):
    net = _net(2, 2)
    h = net.submit_collective(kind, [1, 0, 2, 3], 1 << 20, 0)
    net.run()
    ends = net.result(h)
    assert set(ends) == {0, 1, 2, 3} and min(ends.values()) > 0


@pytest.mark.parametrize("seed,transport", [(0, "single_path"), (1, "uccl_multipath"), (2, "ethereal")])
def test_incremental_rates_match_full_recompute(seed, transport):
    """Re-rating only the touched connected component gives the full recomputation's end times."""
    def run(incremental: bool) -> tuple[list[dict[int, int]], FlowNetwork]:
        rng = np.random.default_rng(seed)
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 1
        net = FlowNetwork.build(8, 2, cfg, transport, incremental=incremental)
        hs = [net.submit_collective("send_recv", [int(s), int(d)], int(2 ** rng.uniform(10, 22)),
                                    int(rng.integers(0, 100_000)))
              for s, d in (rng.choice(16, 2, replace=False) for _ in range(60))]
        ranks = sorted(rng.choice(16, 6, replace=False).tolist())
        hs.append(net.submit_collective("all_reduce", ranks, 1 << 20, int(rng.integers(0, 100_000))))
        net.run()
        return [net.result(h) for h in hs], net
    inc, net_inc = run(True)
    full, net_full = run(False)
    assert all(abs(a[r] - b[r]) <= 1 for a, b in zip(inc, full, strict=True) for r in a)
    assert net_inc.stats.flows_recomputed < net_full.stats.flows_recomputed  # and it did less work


@pytest.mark.parametrize("transport", ["single_path", "uccl_multipath"])
def test_warm_start_after_completions_matches_full_recompute(transport):
    """Flows that all start together and only finish afterwards: the warm start (re-rate only flows at
    or above the finished ones' rate) gives the full recomputation's end times, with less work."""
    def run(incremental: bool) -> tuple[list[dict[int, int]], FlowNetwork]:
        cfg = NetworkConfig()
        cfg.collectives.p2p_channels_per_peer = 1
        net = FlowNetwork.build(16, 2, cfg, transport, incremental=incremental)
        rng = np.random.default_rng(3)
        hs = [net.submit_collective("send_recv", [a, b], int(2 ** rng.uniform(16, 22)), 0)
              for a in range(32) for b in range(32) if a != b and (a * 7 + b) % 5 == 0]
        net.run()
        return [net.result(h) for h in hs], net
    inc, net_inc = run(True)
    full, net_full = run(False)
    assert inc == full
    assert net_inc.stats.flows_recomputed < net_full.stats.flows_recomputed / 2


def test_max_min_residual_is_what_other_flows_leave():
    """``residual``: a sub-problem on the capacity fixed-rate flows leave equals the whole problem."""
    ef, el, ew = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), np.array([1.0, 1.0, 1.0, 1.0])
    cap = np.array([10.0, 4.0])
    whole = max_min_rates(ef, el, ew, 3, cap)
    assert whole.tolist() == [2.0, 2.0, 8.0]
    # flows 0 and 1 held at 2: flow 2 alone on link 0 with 10 - 2 left
    sub = max_min_rates(np.array([0]), np.array([0]), np.array([1.0]), 1, cap, residual=np.array([8.0, 0.0]))
    assert sub.tolist() == [8.0]


def test_network_efficiency_slows_only_flows_that_leave_the_host():
    """all_to_all's calibrated network efficiency (ns-3, issue 6) scales its inter-host time only."""
    def a2a(hosts: int, gpus: int, eff: float) -> float:
        net = _net(hosts, gpus, collectives={"network_efficiency": {"all_to_all": eff}, "launch_latency_us": 0})
        h = net.submit_collective("all_to_all", list(range(hosts * gpus)), 1 << 30, 0)
        net.run()
        return max(net.result(h).values())

    assert a2a(4, 1, 0.91) / a2a(4, 1, 1.0) == pytest.approx(1 / 0.91, rel=0.02)
    assert a2a(1, 4, 0.91) == a2a(1, 4, 1.0), "NVLink-only all-to-all is unaffected"
    assert NetworkConfig().collectives.network_efficiency == {"all_to_all": 0.87}
