"""Point-to-point patterns: send/recv and all-to-all (every pair, ``p2p_channels_per_peer`` connections)."""

from __future__ import annotations

from netsim.collectives.base import COLLECTIVES, Plan
from netsim.flows import FlowSpec


def _pair_flows(plan: Plan, src: int, dst: int, nbytes: float, channel_base: int = 0) -> list[FlowSpec]:
    if plan.nccl and plan.topology.host_of(src) == plan.topology.host_of(dst):
        from netsim.collectives.nccl import p2p_split

        k, p = p2p_split(plan, nbytes)  # NCCL's own split over NVLink channels
        sharing = k * max(1, plan.n - 1)
    else:
        k = plan.config.collectives.p2p_channels_per_peer
        p = plan.choose_protocol(1, nbytes) if not plan.nccl else _p2p_protocol(plan, nbytes, k)
        sharing = k
    plan.label = f"p2p/{p.name}/{k}"
    return [plan.path_flow([(src, dst)], channel_base + ch, nbytes / k, (src, dst), 1, p, sharing)
            for ch in range(k)]


def _p2p_protocol(plan: Plan, nbytes: float, k: int):
    from netsim.collectives.nccl import P2P_LL_THRESHOLD, with_nccl_latency
    from netsim.collectives.protocols import PROTOCOLS

    return with_nccl_latency(PROTOCOLS.get("LL" if nbytes <= k * P2P_LL_THRESHOLD else "Simple"), "ring")


@COLLECTIVES.register("send_recv")
def send_recv(plan: Plan) -> list[FlowSpec]:
    """``ranks = [src, dst]``: ``nbytes`` from the first to the second."""
    if plan.n != 2:
        raise ValueError(f"send_recv needs exactly 2 ranks [src, dst], got {plan.n}")
    return _pair_flows(plan, plan.ranks[0], plan.ranks[1], plan.nbytes)


@COLLECTIVES.register("all_to_all")
def all_to_all(plan: Plan) -> list[FlowSpec]:
    """Each rank sends ``nbytes / n`` to every other rank (nccl-tests size = per-rank buffer), or, with
    a traffic matrix (all-to-all-v, e.g. MoE token dispatch), ``matrix[i][j]`` bytes from ``ranks[i]``
    to ``ranks[j]``: one flow set per (src, dst) pair that moves anything."""
    from netsim.collectives.ring import _noop

    n = plan.n
    if n == 1:
        return _noop(plan)
    out: list[FlowSpec] = []
    for i, s in enumerate(plan.ranks):
        for j, d in enumerate(plan.ranks):
            share = plan.nbytes / n if plan.matrix is None else plan.matrix[i][j]
            if s != d and share > 0:
                out += _pair_flows(plan, s, d, share)
    return out or _noop(plan)


@COLLECTIVES.register("gather")
def gather(plan: Plan) -> list[FlowSpec]:
    """Every other rank sends ``nbytes / n`` to the root (``ranks[0]``)."""
    from netsim.collectives.ring import _noop

    root, share = plan.ranks[0], plan.nbytes / plan.n
    out = [f for r in plan.ranks[1:] for f in _pair_flows(plan, r, root, share)]
    return out or _noop(plan)


@COLLECTIVES.register("scatter")
def scatter(plan: Plan) -> list[FlowSpec]:
    """The root (``ranks[0]``) sends ``nbytes / n`` to every other rank."""
    from netsim.collectives.ring import _noop

    root, share = plan.ranks[0], plan.nbytes / plan.n
    out = [f for r in plan.ranks[1:] for f in _pair_flows(plan, root, r, share)]
    return out or _noop(plan)


@COLLECTIVES.register("barrier")
def barrier(plan: Plan) -> list[FlowSpec]:
    """A tiny all-reduce (NCCL barriers are a 1-element all-reduce)."""
    from netsim.collectives.ring import ring_flows

    n = plan.n
    return ring_flows(plan, 2.0 * (n - 1) / n * min(plan.nbytes, 8.0), 2 * (n - 1))
