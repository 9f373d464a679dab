"""Tree all-reduce: NCCL's double binary tree, pipelined (reduce up, broadcast down).

Two complementary binary trees over the group (in ring order, the second shifted by one)
each carry half the buffer; every tree edge carries its half up and back down. One flow
per (tree, channel); latency grows with 2·depth steps instead of the ring's 2(n-1), so
the tree wins for small messages on large groups and loses bandwidth to the ring.
"""

from __future__ import annotations

import math

from netsim.collectives.base import ALGORITHMS, Plan
from netsim.collectives.ring import ring_order
from netsim.flows import FlowSpec


def _tree_edges(order: list[int]) -> list[tuple[int, int]]:
    edges = []
    for i in range(1, len(order)):
        parent = order[(i - 1) // 2]
        edges += [(order[i], parent), (parent, order[i])]
    return edges


def tree_steps(n: int) -> int:
    return 2 * max(1, math.ceil(math.log2(n))) if n > 1 else 0


@ALGORITHMS.register("tree")
def tree_all_reduce(plan: Plan) -> list[FlowSpec]:
    from netsim.collectives.ring import _noop

    if plan.n == 1:
        return _noop(plan)
    steps = tree_steps(plan.n)
    p = plan.choose_protocol(steps, plan.nbytes)
    c = plan.channels
    plan.label = f"tree/{p.name}/{c}"
    out = []
    for ch in range(c):
        order = ring_order(plan, ch)
        for t, tree in enumerate((order, order[1:] + order[:1])):
            out.append(plan.path_flow(_tree_edges(tree), 2 * ch + t, plan.nbytes / (2 * c), plan.ranks,
                                      steps, p, 2 * c))
    return out


def tree_is_faster(plan: Plan) -> bool:
    """NCCL-tuner-like choice with the unloaded bottleneck bandwidth."""
    n = plan.n
    if n <= 2:
        return False
    intra = plan.is_intra_host()
    bw = plan.config.intra_host.nvlink_gbps_per_direction if intra else plan.config.nic.gbit / 8.0
    p = plan.choose_protocol(2 * (n - 1), plan.nbytes)
    step = (p.step_latency_nvlink_us if intra else p.step_latency_net_us)
    ring_us = 2 * (n - 1) * step + 2 * (n - 1) / n * plan.nbytes / (bw * 1e3)
    # a tree edge carries the buffer both ways and interior nodes have 3 edges: ~2x the ring's bytes per link
    tree_us = tree_steps(n) * step + 2 * plan.nbytes / (bw * 1e3)
    return tree_us < ring_us
