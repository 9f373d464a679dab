"""Point-to-point patterns: send/recv and all-to-all (every pair, ``p2p_channels_per_peer`` connections)."""

from __future__ import annotations

from netsim.collectives.base import COLLECTIVES, Plan
from netsim.flows import FlowSpec


def _pair_flows(plan: Plan, src: int, dst: int, nbytes: float, channel_base: int = 0) -> list[FlowSpec]:
    k = plan.config.collectives.p2p_channels_per_peer
    p = plan.choose_protocol(1, nbytes)
    return [plan.path_flow([(src, dst)], channel_base + ch, nbytes / k, (src, dst), 1, p, k)
            for ch in range(k)]


@COLLECTIVES.register("send_recv")
def send_recv(plan: Plan) -> list[FlowSpec]:
    """``ranks = [src, dst]``: ``nbytes`` from the first to the second."""
    if plan.n != 2:
        raise ValueError(f"send_recv needs exactly 2 ranks [src, dst], got {plan.n}")
    return _pair_flows(plan, plan.ranks[0], plan.ranks[1], plan.nbytes)


@COLLECTIVES.register("all_to_all")
def all_to_all(plan: Plan) -> list[FlowSpec]:
    """Each rank sends ``nbytes / n`` to every other rank (nccl-tests size = per-rank buffer)."""
    n = plan.n
    if n == 1:
        from netsim.collectives.ring import _noop

        return _noop(plan)
    share = plan.nbytes / n
    out: list[FlowSpec] = []
    for s in plan.ranks:
        for d in plan.ranks:
            if s != d:
                out += _pair_flows(plan, s, d, share)
    return out
