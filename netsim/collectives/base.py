"""Shared machinery: a :class:`Plan` (one collective call in context) and the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from common.kinds import CollectiveKind
from common.registry import Registry
from netsim.collectives.protocols import PROTOCOLS, Protocol
from netsim.config import NetworkConfig
from netsim.flows import FlowSpec, merge_incidence
from netsim.topologies.base import Topology
from netsim.transports.base import Transport


def bus_factor(kind: str, n: int) -> float:
    """The one bus-bandwidth rule (nccl-tests' busbw / algbw) every table uses: 2(n-1)/n all-reduce;
    (n-1)/n all-gather, reduce-scatter, all-to-all, gather, scatter; 1 broadcast, reduce, send/recv
    (and barrier); 0 for a group of one. A rank-side kind counts as the collective the network
    times for it (``send`` as ``send_recv``, ``all_gather_object`` as ``all_gather``); an unknown
    kind raises :class:`~common.kinds.UnknownCollectiveKind`."""
    k = CollectiveKind.parse(kind).network_kind
    if n <= 1:
        return 0.0
    if k is CollectiveKind.ALL_REDUCE:
        return 2.0 * (n - 1) / n
    if k in _PER_PEER_SHARE:
        return (n - 1) / n
    return 1.0


_PER_PEER_SHARE = frozenset({CollectiveKind.ALL_GATHER, CollectiveKind.REDUCE_SCATTER, CollectiveKind.ALL_TO_ALL,
                             CollectiveKind.GATHER, CollectiveKind.SCATTER})


@dataclass
class Plan:
    """One collective call: what decompositions read. ``nbytes`` is the nccl-tests size."""

    kind: str
    ranks: list[int]
    nbytes: float
    start_ns: dict[int, int]
    topology: Topology
    transport: Transport
    config: NetworkConfig
    conn_cache: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    algorithm: str | None = None
    protocol: str | None = None
    matrix: list[list[float]] | None = None
    """``all_to_all``: bytes ``ranks[i]`` sends to ``ranks[j]`` (an uneven all-to-all-v)."""

    @property
    def n(self) -> int:
        return len(self.ranks)

    _choice: object = None
    label: str = ""
    """What ran, for tables: ``algorithm/protocol/channels`` (``p2p/<protocol>/<channels per peer>``)."""

    @property
    def nccl(self) -> bool:
        """NCCL's tuner decides (``collectives.tuner: nccl``)."""
        return self.config.collectives.tuner == "nccl"

    def choice(self):  # -> netsim.collectives.tuner.Choice (cached: one per call)
        """What NCCL's tuner runs for this ring-family call."""
        if self._choice is None:
            from netsim.collectives.nccl import tuned

            self._choice = tuned(self)
        return self._choice

    @property
    def channels(self) -> int:
        if self.nccl:
            return self.choice().channels
        return self.config.collectives.channels

    def hop(self, src: int, dst: int, channel: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(links, weights, latency_ns)`` of connection (src, dst, channel); cached so a
        connection keeps its paths across calls, as NCCL's do."""
        key = (src, dst, channel)
        hit = self.conn_cache.get(key)
        proxy = self.pxn_proxy(src, dst)
        if proxy is None:
            route = self.topology.route(src, dst)
            latency = route.latency_ns
            if hit is None:
                hit = self.conn_cache[key] = self.transport.spread(route, key)
        else:  # NVLink to the GPU on the peer's rail, then that GPU's NIC to the peer's NIC
            nvl, net = self.topology.route(src, proxy), self.topology.route(proxy, dst)
            latency = nvl.latency_ns + net.latency_ns
            if hit is None:
                (l1, w1), (l2, w2) = self.transport.spread(nvl, key), self.transport.spread(net, key)
                hit = self.conn_cache[key] = merge_incidence([l1, l2], [w1, w2])
        return hit[0], hit[1], latency + self.transport.message_latency_ns

    def pxn_proxy(self, src: int, dst: int) -> int | None:
        """NCCL's PXN on a rail-optimized fabric: the GPU on ``src``'s host whose NIC is on
        ``dst``'s rail, when ``src``'s own NIC is not; ``None`` when the hop goes direct."""
        topo = self.topology
        if not (self.config.fabric.rail_optimized and self.config.collectives.pxn):
            return None
        host_s, local_s = divmod(src, topo.gpus_per_host)
        host_d, local_d = divmod(dst, topo.gpus_per_host)
        rails = getattr(topo, "nics_per_host", topo.gpus_per_host)
        if host_s == host_d or local_s % rails == local_d % rails:
            return None
        return host_s * topo.gpus_per_host + local_d % rails

    _intra: bool | None = None

    def is_intra_host(self) -> bool:
        """Every rank on one host (cached: an all-to-all asks once per pair)."""
        if self._intra is None:
            g = self.topology.gpus_per_host
            self._intra = len({r // g for r in self.ranks}) == 1
        return self._intra

    def choose_protocol(self, steps: int, bus_bytes: float) -> Protocol:
        """The configured protocol, or (``auto``) the one with the least modelled time."""
        if self.nccl:
            from netsim.collectives.nccl import with_nccl_latency

            ch = self.choice()
            return with_nccl_latency(PROTOCOLS.get(ch.protocol), ch.algorithm)
        name = self.protocol or self.config.collectives.protocol
        if name != "auto":
            return PROTOCOLS.get(name)
        intra = self.is_intra_host()
        bw = (self.config.intra_host.nvlink_gbps_per_direction if intra else self.config.nic.gbit / 8.0)
        def est(p: Protocol) -> float:
            step = p.step_latency_nvlink_us if intra else p.step_latency_net_us
            return p.base_latency_us + steps * step + bus_bytes / (bw * 1e3 * p.bandwidth_efficiency)
        return min((PROTOCOLS.get(n) for n in ("LL", "LL128", "Simple")), key=est)

    def launch_ns(self, p: Protocol) -> int:
        return round((self.config.collectives.launch_latency_us + p.base_latency_us) * 1e3)

    def nvlink_cap_gbps(self, flows_sharing: int, p: Protocol | None = None) -> float:
        """Per-flow rate cap on NVLink: one channel's CTA rate (``intra_host.model: cta``, for groups
        inside one host, where it was fitted) or a fraction of the link per kind (``efficiency``, and
        multi-host groups: NCCL's network channels run other kernels' code paths, not measured here)."""
        if self.config.intra_host.model == "cta" and p is not None and self.is_intra_host():
            from netsim.collectives.nccl import cta_cap_gbps

            return cta_cap_gbps(self, p, flows_sharing)
        c = self.config.collectives
        eff = c.nvlink_efficiency.get(self.kind, c.default_nvlink_efficiency)
        return eff * self.config.intra_host.nvlink_gbps_per_direction / max(1, flows_sharing)

    def start_of(self, ranks: Sequence[int]) -> int:
        return max(self.start_ns[r] for r in ranks)

    def path_flow(self, hops: Sequence[tuple[int, int]], channel: int, nbytes: float, ranks: Sequence[int],
                  steps: int, p: Protocol, flows_sharing_nvlink: int) -> FlowSpec:
        """One pipelined flow over ``hops`` (ring, chain or tree edges)."""
        links, weights, lat_sum = [], [], 0
        for s, d in hops:
            lk, w, hop_lat = self.hop(s, d, channel)
            links.append(lk)
            weights.append(w)
            intra = self.topology.host_of(s) == self.topology.host_of(d)
            lat_sum += hop_lat + round(1e3 * (p.step_latency_nvlink_us if intra else p.step_latency_net_us))
        lk, w = _sorted_single(links[0], weights[0]) if len(links) == 1 else merge_incidence(links, weights)
        on_nvlink = bool(self.topology.nvlink_links[lk].any())
        cap = self.nvlink_cap_gbps(flows_sharing_nvlink, p) if on_nvlink else float("inf")
        wire = nbytes * self.transport.wire_factor / p.bandwidth_efficiency
        if not on_nvlink:
            wire /= self.config.collectives.network_efficiency.get(self.kind, 1.0)
        # pipeline fill: each step crosses one hop; the steps go round the hops evenly
        tail = round(steps * lat_sum / max(1, len(hops)))
        return FlowSpec(lk, w, wire, self.start_of(ranks) + self.launch_ns(p), tuple(ranks), tail, cap)


def _sorted_single(links: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`merge_incidence` of one hop (a send/recv): its links sorted, repeated ones summed;
    the same arrays, without ``np.unique``'s cost when the links are distinct (they are on every
    route the topologies build)."""
    order = np.argsort(links, kind="stable")
    lk = links[order]
    if len(lk) > 1 and not (lk[1:] > lk[:-1]).all():
        return merge_incidence([links], [weights])
    return lk, weights[order].astype(float)


Decomposer = Callable[[Plan], list[FlowSpec]]
COLLECTIVES: Registry[Decomposer] = Registry("collective")
"""Collective kind (a :class:`~common.kinds.CollectiveKind` value) -> its decomposition into flows."""
ALGORITHMS: Registry[Decomposer] = Registry("all-reduce algorithm")
"""All-reduce algorithm (``collectives.algorithm``: ``ring``, ``tree``) -> its decomposition."""


def decompose(kind: str, ranks: Sequence[int], nbytes: float, start_ns: Mapping[int, int] | int, *,
              topology: Topology, transport: Transport, config: NetworkConfig,
              conn_cache: dict | None = None, algorithm: str | None = None,
              protocol: str | None = None, matrix: Sequence[Sequence[float]] | None = None,
              labels: list[str] | None = None) -> list[FlowSpec]:
    """The flows of one collective call (``kind`` in :data:`COLLECTIVES`); ``matrix``: the traffic
    matrix of an uneven ``all_to_all`` (row ``i``: bytes ``ranks[i]`` sends to each of ``ranks``)."""
    fn = COLLECTIVES.get(kind)
    ranks = list(ranks)
    if len(set(ranks)) != len(ranks) or not ranks:
        raise ValueError(f"{kind}: ranks must be distinct and non-empty")
    rows = None
    if matrix is not None:
        if kind != "all_to_all":
            raise ValueError(f"{kind}: a traffic matrix is only meaningful for all_to_all")
        rows = [[float(b) for b in row] for row in matrix]
        if len(rows) != len(ranks) or any(len(row) != len(ranks) for row in rows):
            raise ValueError(f"all_to_all: the traffic matrix must be {len(ranks)} x {len(ranks)} (one row and "
                             "column per rank)")
        if any(b < 0 for row in rows for b in row):
            raise ValueError("all_to_all: traffic matrix entries must be >= 0 bytes")
    starts = {r: int(start_ns) for r in ranks} if isinstance(start_ns, int | float) else {
        r: int(start_ns[r]) for r in ranks}
    plan = Plan(kind, ranks, float(nbytes), starts, topology, transport, config,
                conn_cache if conn_cache is not None else {}, algorithm, protocol, rows)
    flows = fn(plan)
    if labels is not None:
        labels.append(plan.label)
    return flows
