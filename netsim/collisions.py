"""ECMP collision statistics of one collective on a fabric, without running the engine.

Why: whether single-path ECMP costs anything is decided by how many connections a hash puts on
one switch link *and* how fast each of them wants to go. A ring channel's demand is its own rate
cap (NCCL's kernel, one CTA per channel), not the NIC's line rate, so k connections on one link
overload it only when ``k x demand > capacity``. :func:`fabric_collisions` counts that per link
for a decomposition, so a table can say why a transport gains (or does not) on a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netsim.collectives import decompose
from netsim.config import NetworkConfig
from netsim.topologies.base import Topology
from netsim.transports import Transport


@dataclass(frozen=True, slots=True)
class Collisions:
    """Spine-tier links (a leaf's up- and down-links; the only ones ECMP chooses) of one collective."""

    links_used: int
    """Spine-tier links that carry any flow."""
    per_link: dict[int, int]
    """Histogram: number of flows on a link -> how many links carry that many."""
    demand_gbps: float
    """Median rate cap of the flows that cross the spine tier (what one connection can push)."""
    worst_overload: float
    """max over links of (sum of the crossing flows' caps x their weight) / link capacity;
    <= 1 means no link of the spine tier can be a bottleneck in a fluid model."""
    overloaded_links: int
    """Links with that ratio > 1."""


def fabric_links(topology: Topology) -> np.ndarray:
    """Mask of the spine-tier links (names ``leaf<a>_up<j>`` / ``leaf<a>_dn<j>``, and a fat-tree's pod links)."""
    return np.array([n.startswith(("leaf", "pod", "agg", "core")) for n in topology.link_names], dtype=bool)


def fabric_collisions(kind: str, ranks: Sequence[int], nbytes: int, *, topology: Topology,
                      transport: Transport, config: NetworkConfig) -> Collisions:
    """Count the flows per spine-tier link of one collective as ``transport`` hashes it."""
    specs = decompose(kind, ranks, nbytes, 0, topology=topology, transport=transport, config=config)
    fab = fabric_links(topology)
    count = np.zeros(len(fab), dtype=np.int64)
    load = np.zeros(len(fab))
    caps = []
    for s in specs:
        links = np.asarray(s.links, dtype=np.int64)
        on = fab[links]
        if not on.any():
            continue
        cap = s.max_rate_gbps if np.isfinite(s.max_rate_gbps) else float(topology.capacity_gbps[links].min())
        caps.append(cap)
        np.add.at(count, links[on], 1)
        np.add.at(load, links[on], cap * np.asarray(s.weights, dtype=float)[on])
    used = count > 0
    ratio = np.where(used, load / topology.capacity_gbps, 0.0)
    hist = dict(sorted(zip(*np.unique(count[used], return_counts=True), strict=True)))
    return Collisions(int(used.sum()), {int(k): int(v) for k, v in hist.items()},
                      float(np.median(caps)) if caps else 0.0, float(ratio.max()) if used.any() else 0.0,
                      int((ratio > 1 + 1e-9).sum()))
