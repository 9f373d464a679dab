"""A minimal max-min fluid model over the same :class:`PacketFlow` sets ns-3 simulates.

It is the stand-in for the flow-level engine when ``netsim``'s own engine cannot take a
flow set directly, and it is where the calibration parameters are checked: a flow's data
moves at its max-min fair rate times ``protocol_efficiency``, starts ``startup_ns`` after
the flow does (connection set-up: one round trip) and is done ``tail_ns`` after its last
byte leaves (last packet crossing the path). A flow's ``delay_ns`` (NCCL's software
latency) passes between its being ready and its data starting, as in the ns-3 driver.
Multipath flows are split evenly over their paths, as spraying over many QPs does in the
flow-level engine.
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
    n_links, n_flows = incidence.shape
    width = max(1, int((incidence > 0).sum(axis=0).max(initial=0)))
    paths = np.full((n_flows, width), n_links)
    for j in range(n_flows):
        links = np.flatnonzero(incidence[:, j])
        paths[j, : len(links)] = links
    return max_min_rates_paths(caps, paths)


def max_min_rates_paths(caps: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Progressive filling over flows given as rows of link indices (``len(caps)`` pads a row).

    Every link at the smallest fair share saturates in the same round (freezing one of them
    leaves the others' share unchanged), so a symmetric collective needs few rounds.
    """
    n_links = len(caps)
    rates = np.zeros(len(paths))
    live = np.ones(len(paths), dtype=bool)
    left = caps.astype(float).copy()
    while live.any():
        counts = np.bincount(paths[live].ravel(), minlength=n_links + 1)[:n_links]
        share = np.where(counts > 0, left / np.maximum(counts, 1), np.inf)
        fair = float(share.min())
        if not np.isfinite(fair):
            break
        saturated = np.append(share <= fair * (1 + 1e-12), False)
        newly = live & saturated[paths].any(axis=1)
        rates[newly] = fair
        live &= ~newly
        left = np.maximum(left - np.bincount(paths[newly].ravel(), minlength=n_links + 1)[:n_links] * fair, 0.0)
    return rates


def simulate_fluid(
    fabric: FabricSpec, flows: Sequence[PacketFlow], params: FluidParams = FluidParams()
) -> list[FlowResult]:
    """Completion time of every flow under max-min sharing; results in the order of ``flows``.

    Sub-flows live in arrays (owner, path, bytes left) and rates are recomputed only when the
    set of active sub-flows changes, so an all-to-all of ~8,000 sprayed sub-flows takes seconds.
    """
    caps, index = _links(fabric)
    pad = len(caps)
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
    # active sub-flows: owner flow id, padded link indices, bytes left
    owner = np.zeros(0, dtype=np.int64)
    paths = np.zeros((0, 4), dtype=np.int64)
    remaining = np.zeros(0)
    added: list[tuple[int, list[int], float]] = []  # sub-flows started since the last rate update
    rates = np.zeros(0)
    dirty = False
    sub_left: dict[int, int] = {}

    def start(fid: int, t: float) -> None:
        f = by_id[fid]
        started[fid] = t
        rtt = 2 * hops(f) * hop_ns
        heapq.heappush(events, (t + params.startup_rtts * rtt, 0, fid))

    for f in flows:
        if not f.deps:
            start(f.flow_id, float(f.start_ns + f.delay_ns))
    now = 0.0
    while events or added or len(owner):
        if added:
            owner = np.concatenate([owner, [a[0] for a in added]])
            paths = np.concatenate([paths, [a[1] + [pad] * (4 - len(a[1])) for a in added]])
            remaining = np.concatenate([remaining, [a[2] for a in added]])
            added = []
            dirty = True
        if len(owner):
            if dirty:
                rates = max_min_rates_paths(caps, paths) * params.protocol_efficiency / 8  # bytes per ns
                dirty = False
            with np.errstate(divide="ignore"):
                dt = np.where(rates > 0, remaining / rates, np.inf)
            t_done = now + float(dt.min())
        else:
            t_done = np.inf
        t_evt = events[0][0] if events else np.inf
        t_next = min(t_done, t_evt)
        if len(owner):
            remaining = np.maximum(remaining - rates * (t_next - now), 0.0)
        now = t_next
        if t_done <= t_evt:
            done = remaining <= 1e-6
            for fid in owner[done].tolist():
                sub_left[fid] -= 1
                if sub_left[fid] == 0:
                    f = by_id[fid]
                    last_pkt_ns = wire_ns_per_byte * (min(f.size_bytes // len(f.spines), payload) + hdr)
                    tail = hops(f) * hop_ns + params.store_and_forward * (hops(f) - 1) * last_pkt_ns
                    heapq.heappush(events, (now + tail, 1, fid))
            keep = ~done
            owner, paths, remaining, rates = owner[keep], paths[keep], remaining[keep], rates[keep]
            dirty = True
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
                added.append((fid, _path(fabric, index, f, s % fabric.n_spines), f.size_bytes / parts))
        else:
            finished[fid] = t if f.size_bytes else started[fid]
            for d in dependents[fid]:
                deps_left[d] -= 1
                if deps_left[d] == 0:
                    start(d, max(t, float(by_id[d].start_ns)) + by_id[d].delay_ns)
    return [FlowResult(f.flow_id, round(started[f.flow_id]), round(finished[f.flow_id])) for f in flows]
