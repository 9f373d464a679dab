"""What NCCL runs for one call, and what its kernels can move over NVLink.

Glue between a :class:`~netsim.collectives.base.Plan` and NCCL's tuner
(:mod:`netsim.collectives.tuner`): the topology-search :class:`~netsim.collectives.tuner.Graph` of the
group, the tuned (algorithm, protocol, channels), NCCL's peer-to-peer channel split
(src/enqueue.cc) and the NVLink "CTA" model (``intra_host.model: cta``): one NCCL channel is one
CTA, which moves at most its kernel family's ``cta_gbps``; a GPU's channels share its NVLink
(``nvlinks_per_gpu x nvlink_link_gbps``). Why a per-CTA limit: on 2x H200 NCCL reaches 240-330 GB/s
of a 370.8 GB/s NVLink with 24 channels, and its busbw changes with the channel count it uses
(all-to-all doubles its channels at 1 GiB and its busbw jumps), which a per-kind fraction of the
link cannot express and a per-CTA rate does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from netsim.collectives.protocols import PROTOCOLS, Protocol
from netsim.collectives.tuner import BASE_LAT, HW_LAT, Choice, Graph, choose, ring_graph_intra

if TYPE_CHECKING:
    from netsim.collectives.base import Plan

FAMILY = {"all_reduce": "all_reduce", "reduce_scatter": "reduce_scatter", "reduce": "reduce_scatter",
          "all_gather": "all_gather", "broadcast": "all_gather", "barrier": "all_reduce"}
"""Collective kind -> NCCL kernel family of ``intra_host.cta_gbps`` (anything else: ``p2p``)."""
P2P_NVL_CHUNK = 512 * 1024  # NCCL_P2P_NVL_CHUNKSIZE (the shipped log: "P2P Chunksize set to 524288")
P2P_LL_THRESHOLD = 16384  # NCCL_P2P_LL_THRESHOLD


def family(kind: str) -> str:
    return FAMILY.get(kind, "p2p")


def comm_channels(plan: Plan) -> int:
    """Channels of the communicator: inside one host NCCL's NVLink search (twice the ring graph's, as
    ncclTopoPostset duplicates them), else the scenario's ``collectives.channels``."""
    ih = plan.config.intra_host
    if not plan.is_intra_host():
        return plan.config.collectives.channels
    if ih.channels is not None:
        return ih.channels
    return 2 * ring_graph_intra(_nvlinks_to_peers(plan), ih.nvlink_link_gbps)[0]


def _nvlinks_to_peers(plan: Plan) -> int:
    ih = plan.config.intra_host
    if ih.nvswitch:
        return ih.nvlinks_per_gpu
    return max(1, ih.nvlinks_per_gpu // max(1, plan.topology.gpus_per_host - 1))


def graph(plan: Plan) -> Graph:
    """NCCL's ring graph for the group: NVLink speeds inside a host; across hosts the host's NIC
    bandwidth spread over the ring graph's channels (half the communicator's)."""
    ih = plan.config.intra_host
    hosts = len({plan.topology.host_of(r) for r in plan.ranks})
    if hosts == 1:
        ch, bw = ring_graph_intra(_nvlinks_to_peers(plan), ih.nvlink_link_gbps)
        return Graph(ch, bw, bw, 1, plan.n, tree_bw_intra_gbps=2 * bw if plan.n == 2 else bw)
    ch = max(1, plan.config.collectives.channels // 2)
    nic_gbps = plan.config.nic.gbit / 8 * (plan.topology.gpus_per_host if plan.config.nic.per_gpu
                                           else plan.config.nic.nics_per_host)
    per_ch = min(nic_gbps / ch, ih.nvlinks_per_gpu * ih.nvlink_link_gbps / ch)
    return Graph(ch, per_ch, per_ch, hosts, plan.n)


def tuned(plan: Plan) -> Choice:
    """The tuner's pick for a ring-family call, honouring ``algorithm``/``protocol`` when not ``auto``
    and ``nccl_algo``/``nccl_proto`` (NCCL_ALGO/NCCL_PROTO syntax) on top."""
    c = plan.config.collectives
    func = plan.kind if plan.kind in FAMILY and plan.kind != "barrier" else "all_reduce"
    algo = plan.algorithm or c.algorithm
    proto = plan.protocol or c.protocol
    algo_spec = c.nccl_algo or ("" if algo == "auto" or func != "all_reduce" else algo)
    proto_spec = c.nccl_proto or ("" if proto == "auto" else proto)
    return choose(func, plan.nbytes, graph(plan), comm_channels=comm_channels(plan),
                  algo_spec=algo_spec, proto_spec=proto_spec)


@functools.lru_cache(maxsize=64)
def with_nccl_latency(p: Protocol, algorithm: str, intra: str = "nvlink") -> Protocol:
    """``p`` carrying NCCL's base latency and per-step NVLink / network latency for ``algorithm``
    (memoised: an all-to-all asks once per pair; protocols are frozen)."""
    i = ("LL", "LL128", "Simple").index(p.name)
    return dataclasses.replace(p, base_latency_us=BASE_LAT[algorithm][i],
                               step_latency_nvlink_us=HW_LAT[intra][algorithm][i],
                               step_latency_net_us=HW_LAT["net"][algorithm][i])


def p2p_split(plan: Plan, nbytes: float) -> tuple[int, Protocol]:
    """NCCL's split of one send of ``nbytes`` (src/enqueue.cc): up to ``p2pnChannelsPerPeer`` channels,
    halved while they would exceed the p2p channels over all peers; inside a node a part is 64 KiB
    to 16 MiB, more channels when parts would be larger. LL when every channel carries <= 16 KiB."""
    p2p_total = 1 << max(0, (comm_channels(plan) - 1).bit_length())  # next power of two
    per_peer = p2p_total
    while per_peer * plan.n > p2p_total and per_peer > 1:
        per_peer //= 2
    min_part, max_part = P2P_NVL_CHUNK // 8, P2P_NVL_CHUNK * 32
    nch = max(1, min(per_peer, -(-int(nbytes) // min_part)))
    part = max(min_part, nbytes / nch)
    while part > max_part and nch <= p2p_total // 2:
        nch *= 2
        part = nbytes / nch
    name = "LL" if nbytes <= nch * P2P_LL_THRESHOLD else "Simple"
    return nch, with_nccl_latency(PROTOCOLS.get(name), "ring")


def cta_cap_gbps(plan: Plan, p: Protocol, flows_sharing: int) -> float:
    """Per-flow (one channel = one CTA) rate cap on NVLink, in wire bytes per ns."""
    ih = plan.config.intra_host
    simple = ih.cta_gbps.get(family(plan.kind), min(ih.cta_gbps.values()))
    rate = {"LL": ih.cta_ll_gbps, "LL128": simple * 120 / 128}.get(p.name, simple)
    link = _nvlinks_to_peers(plan) * ih.nvlink_link_gbps / max(1, flows_sharing)
    return min(rate, link)
