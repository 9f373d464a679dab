"""A minimal max-min fluid model over the same :class:`PacketFlow` sets ns-3 simulates.

It is the stand-in for the flow-level engine when ``netsim``'s own engine cannot take a
flow set directly, and it is where the calibration parameters are checked: a flow's data
moves at its max-min fair rate times ``protocol_efficiency``, starts ``startup_ns`` after
the flow does (connection set-up: one round trip) and is done ``tail_ns`` after its last
byte leaves (last packet crossing the path). Multipath flows are split evenly over their
paths, as spraying over many QPs does in the flow-level engine.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netsim.ns3.spec import FabricSpec, FlowResult, PacketFlow


@dataclass(frozen=True, slots=True, kw_only=True)
class FluidParams:
    protocol_efficiency: float = 1.0
    """Payload bytes per byte on the wire (headers); 1.0 = the uncalibrated flow model."""
    startup_rtts: float = 0.0
    """Round trips before data flows (TCP handshake = 1)."""
    store_and_forward: bool = False
    """Add the last packet's serialization at every hop after the first."""


def calibrated_params(fabric: FabricSpec) -> FluidParams:
    """The corrections that explain most of the packet-level gap (docs/validation.md).

    Payload per wire byte at the MTU (IPv4 + TCP-with-timestamps + PPP headers) and
    store-and-forward of the last packet; connections are set up before time 0, as NCCL's are.
    """
    payload = fabric.mtu_bytes - 52
    return FluidParams(
        protocol_efficiency=payload / (fabric.mtu_bytes + 2), startup_rtts=0.0, store_and_forward=True
    )


def _links(fabric: FabricSpec) -> tuple[np.ndarray, dict[tuple[str, int, int], int]]:
    caps: list[float] = []
    index: dict[tuple[str, int, int], int] = {}

    def add(key: tuple[str, int, int], gbps: float) -> None:
        index[key] = len(caps)
        caps.append(gbps)

    for h in range(fabric.n_hosts):
        add(("tx", h, 0), fabric.nic_gbps)
        add(("rx", h, 0), fabric.nic_gbps)
    for leaf in range(fabric.n_leaves):
        for s in range(fabric.n_spines):
            add(("up", leaf, s), fabric.uplink_gbps)
            add(("down", s, leaf), fabric.uplink_gbps)
    return np.asarray(caps, dtype=float), index


def _path(fabric: FabricSpec, index: dict[tuple[str, int, int], int], f: PacketFlow, spine: int) -> list[int]:
    ls, ld = f.src_host // fabric.hosts_per_leaf, f.dst_host // fabric.hosts_per_leaf
    path = [index[("tx", f.src_host, 0)], index[("rx", f.dst_host, 0)]]
    if ls != ld:
        path += [index[("up", ls, spine)], index[("down", spine, ld)]]
    return path


def max_min_rates(caps: np.ndarray, incidence: np.ndarray) -> np.ndarray:
    """Progressive filling: ``incidence`` is links x flows (0/1); returns each flow's rate."""
    n_flows = incidence.shape[1]
    rates = np.zeros(n_flows)
    frozen = np.zeros(n_flows, dtype=bool)
    left = caps.astype(float).copy()
    while not frozen.all():
        counts = incidence[:, ~frozen].sum(axis=1)
        share = np.where(counts > 0, left / np.maximum(counts, 1), np.inf)
        link = int(np.argmin(share))
        if not np.isfinite(share[link]):
            break
        newly = (incidence[link] > 0) & ~frozen
        rates[newly] = share[link]
        frozen |= newly
        left -= incidence[:, newly].sum(axis=1) * share[link]
        left = np.maximum(left, 0.0)
    return rates


def simulate_fluid(
    fabric: FabricSpec, flows: Sequence[PacketFlow], params: FluidParams = FluidParams()
) -> list[FlowResult]:
    """Completion time of every flow under max-min sharing; results in the order of ``flows``."""
    caps, index = _links(fabric)
    by_id = {f.flow_id: f for f in flows}
    dependents: dict[int, list[int]] = {f.flow_id: [] for f in flows}
    deps_left = {f.flow_id: len(f.deps) for f in flows}
    for f in flows:
        for d in f.deps:
            dependents[d].append(f.flow_id)
    hop_ns = fabric.hop_latency_ns
    wire_ns_per_byte = 8 / min(fabric.nic_gbps, fabric.uplink_gbps)
    hdr = 54  # IPv4 + TCP with timestamps + PPP
    payload = fabric.mtu_bytes - 52

    def hops(f: PacketFlow) -> int:
        return 2 if f.src_host // fabric.hosts_per_leaf == f.dst_host // fabric.hosts_per_leaf else 4

    started: dict[int, float] = {}
    finished: dict[int, float] = {}
    # pending events: (time, kind, flow_id); kind 0 = data begins, 1 = flow done
    events: list[tuple[float, int, int]] = []
    # active sub-flows: [flow_id, remaining_bytes, path]
    active: list[tuple[int, list[int]]] = []
    remaining: list[float] = []
    sub_left: dict[int, int] = {}

    def start(fid: int, t: float) -> None:
        f = by_id[fid]
        started[fid] = t
        h = hops(f)
        rtt = 2 * h * hop_ns
        heapq.heappush(events, (t + params.startup_rtts * rtt, 0, fid))

    for f in flows:
        if not f.deps:
            start(f.flow_id, float(f.start_ns))
    now = 0.0
    while events or active:
        if active:
            inc = np.zeros((len(caps), len(active)))
            for j, (_, path) in enumerate(active):
                inc[path, j] = 1
            rates = max_min_rates(caps, inc) * params.protocol_efficiency / 8  # bytes per ns
            with np.errstate(divide="ignore"):
                dt = np.where(rates > 0, np.asarray(remaining) / rates, np.inf)
            j = int(np.argmin(dt))
            t_done = now + float(dt[j])
        else:
            t_done = np.inf
        t_evt = events[0][0] if events else np.inf
        t_next = min(t_done, t_evt)
        if active:
            remaining = list(np.maximum(np.asarray(remaining) - rates * (t_next - now), 0.0))
        now = t_next
        if t_done <= t_evt:
            keep_a, keep_r = [], []
            for (fid, path), rem in zip(active, remaining, strict=True):
                if rem <= 1e-6:
                    sub_left[fid] -= 1
                    if sub_left[fid] == 0:
                        f = by_id[fid]
                        last_pkt_ns = wire_ns_per_byte * (min(f.size_bytes // len(f.spines), payload) + hdr)
                        tail = hops(f) * hop_ns + params.store_and_forward * (hops(f) - 1) * last_pkt_ns
                        heapq.heappush(events, (now + tail, 1, fid))
                else:
                    keep_a.append((fid, path))
                    keep_r.append(rem)
            active, remaining = keep_a, keep_r
            continue
        t, kind, fid = heapq.heappop(events)
        f = by_id[fid]
        if kind == 0:
            if f.size_bytes == 0:
                heapq.heappush(events, (t, 1, fid))
                continue
            parts = len(f.spines)
            sub_left[fid] = parts
            for s in f.spines:
                active.append((fid, _path(fabric, index, f, s % fabric.n_spines)))
                remaining.append(f.size_bytes / parts)
        else:
            finished[fid] = t if f.size_bytes else started[fid]
            for d in dependents[fid]:
                deps_left[d] -= 1
                if deps_left[d] == 0:
                    start(d, max(t, float(by_id[d].start_ns)))
    return [FlowResult(f.flow_id, round(started[f.flow_id]), round(finished[f.flow_id])) for f in flows]
