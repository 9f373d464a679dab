"""Ring (and chain) collectives, NCCL-style.

Each of ``channels`` rings visits the group host by host (NVLink inside a host, one
network hop between hosts: the hierarchical path NCCL's rings take). Ring ``c`` rotates
each host's block by ``c`` so different channels leave a host through different GPUs'
NICs. A ring channel is one pipelined flow (see :class:`netsim.flows.FlowSpec`) carrying,
per hop, the bytes every rank sends: 2(n-1)/n·S/C for all-reduce, (n-1)/n·S/C for
all-gather and reduce-scatter, S/C for broadcast and reduce (a chain from the root).
"""

from __future__ import annotations

from netsim.collectives.base import ALGORITHMS, COLLECTIVES, Plan
from netsim.flows import FlowSpec


def ring_order(plan: Plan, channel: int) -> list[int]:
    by_host: dict[int, list[int]] = {}
    for r in sorted(plan.ranks, key=lambda r: (plan.topology.host_of(r), r)):
        by_host.setdefault(plan.topology.host_of(r), []).append(r)
    order: list[int] = []
    for block in by_host.values():
        k = channel % len(block)
        order += block[k:] + block[:k]
    return order


def _noop(plan: Plan) -> list[FlowSpec]:
    import numpy as np

    p = plan.choose_protocol(0, 0.0)
    return [FlowSpec(np.zeros(0, dtype=np.int64), np.zeros(0), 0.0, plan.start_of(plan.ranks) + plan.launch_ns(p),
                     tuple(plan.ranks))]


def ring_flows(plan: Plan, per_rank_bytes: float, steps: int) -> list[FlowSpec]:
    if plan.n == 1:
        return _noop(plan)
    p = plan.choose_protocol(steps, per_rank_bytes)
    c = plan.channels
    plan.label = f"ring/{p.name}/{c}"
    out = []
    for ch in range(c):
        order = ring_order(plan, ch)
        hops = [(order[i], order[(i + 1) % len(order)]) for i in range(len(order))]
        out.append(plan.path_flow(hops, ch, per_rank_bytes / c, plan.ranks, steps, p, c))
    return out


def chain_flows(plan: Plan, per_rank_bytes: float) -> list[FlowSpec]:
    """Broadcast / reduce: a pipelined chain from the root (``ranks[0]``) along the ring."""
    if plan.n == 1:
        return _noop(plan)
    steps = plan.n - 1
    p = plan.choose_protocol(steps, per_rank_bytes)
    c = plan.channels
    plan.label = f"ring/{p.name}/{c}"
    root = plan.ranks[0]
    out = []
    for ch in range(c):
        order = ring_order(plan, ch)
        k = order.index(root)
        order = order[k:] + order[:k]
        hops = [(order[i], order[i + 1]) for i in range(len(order) - 1)]
        out.append(plan.path_flow(hops, ch, per_rank_bytes / c, plan.ranks, steps, p, c))
    return out


@COLLECTIVES.register("all_reduce")
def all_reduce(plan: Plan) -> list[FlowSpec]:
    """The configured algorithm (a name in :data:`ALGORITHMS`); ``auto``: tree or ring, whichever an
    unloaded estimate says is faster, like NCCL's tuner."""
    algo = plan.algorithm or plan.config.collectives.algorithm
    if plan.nccl:
        algo = plan.choice().algorithm
    elif algo == "auto":
        from netsim.collectives.tree import tree_is_faster

        algo = "tree" if tree_is_faster(plan) else "ring"
    return ALGORITHMS.get(algo)(plan)


@ALGORITHMS.register("ring")
def ring_all_reduce(plan: Plan) -> list[FlowSpec]:
    n = plan.n
    return ring_flows(plan, 2.0 * (n - 1) / n * plan.nbytes, 2 * (n - 1))


@COLLECTIVES.register("all_gather")
def all_gather(plan: Plan) -> list[FlowSpec]:
    n = plan.n
    return ring_flows(plan, (n - 1) / n * plan.nbytes, n - 1)


@COLLECTIVES.register("reduce_scatter")
def reduce_scatter(plan: Plan) -> list[FlowSpec]:
    n = plan.n
    return ring_flows(plan, (n - 1) / n * plan.nbytes, n - 1)


@COLLECTIVES.register("broadcast")
def broadcast(plan: Plan) -> list[FlowSpec]:
    return chain_flows(plan, plan.nbytes)


@COLLECTIVES.register("reduce")
def reduce(plan: Plan) -> list[FlowSpec]:
    return chain_flows(plan, plan.nbytes)
