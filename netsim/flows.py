"""What the engine moves: :class:`FlowSpec`, one max-min flow with its link incidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class FlowSpec:
    """``nbytes`` that cross ``links`` (``weights``: bytes on the link per byte of flow).

    A ring channel is ONE flow whose incidence holds every hop of the ring: a pipelined
    ring moves at the pace of its slowest hop, which is exactly the max-min rate of that
    flow. ``tail_ns`` (pipeline fill: steps x per-step latency) is added after the last
    byte; ``ranks`` are the ranks whose completion waits for this flow.
    """

    links: np.ndarray
    weights: np.ndarray
    nbytes: float
    start_ns: int
    ranks: tuple[int, ...]
    tail_ns: int = 0
    max_rate_gbps: float = float("inf")


def merge_incidence(links: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-hop incidences and sum the weights of repeated links."""
    all_links = np.concatenate(links)
    all_w = np.concatenate(weights)
    uniq, inv = np.unique(all_links, return_inverse=True)
    return uniq, np.bincount(inv, weights=all_w)
