"""Weighted max-min fair rates by progressive filling, vectorised with numpy.

Flow ``f`` puts ``w[f, l] * rate_f`` on link ``l`` (``w`` < 1 for a sprayed connection,
the sum over a ring's hops for a ring flow). All unfrozen flows rise together; each round
raises them to the next link saturation (or per-flow cap) and freezes the flows on it.
Rounds = distinct bottleneck levels, usually a handful; each round is O(nonzeros).
"""

from __future__ import annotations

import numpy as np


def max_min_rates(entry_flow: np.ndarray, entry_link: np.ndarray, entry_weight: np.ndarray,
                  n_flows: int, capacity: np.ndarray, max_rate: np.ndarray | None = None) -> np.ndarray:
    """Rates (capacity units) of ``n_flows`` flows given their (flow, link, weight) incidence entries."""
    rates = np.zeros(n_flows)
    if n_flows == 0:
        return rates
    n_links = len(capacity)
    residual = capacity.astype(float).copy()
    active = np.ones(n_flows, dtype=bool)
    cap = np.full(n_flows, np.inf) if max_rate is None else max_rate.astype(float)
    level = 0.0
    # flows touching no link are limited only by their cap
    touches = np.bincount(entry_flow, minlength=n_flows) > 0
    while active.any():
        ea = active[entry_flow]
        load = np.bincount(entry_link[ea], weights=entry_weight[ea], minlength=n_links)
        used = load > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(used, residual / np.where(used, load, 1.0), np.inf)
        step_link = share.min() if used.any() else np.inf
        step_cap = (cap[active] - level).min()
        step = max(0.0, min(step_link, step_cap))
        if not np.isfinite(step):
            raise ValueError("a flow with no links and no rate cap has unbounded rate")
        level += step
        residual -= step * load
        tight = used & (residual <= 1e-9 * np.maximum(capacity, 1e-30))
        frozen = np.zeros(n_flows, dtype=bool)
        if tight.any():
            hit = ea & tight[entry_link]
            frozen[entry_flow[hit]] = True
        frozen |= active & np.isfinite(cap) & (cap - level <= 1e-12 * np.maximum(cap, 1.0))
        frozen &= active
        if not frozen.any():  # numerical safety: freeze the most constrained flows
            frozen = active & ~touches if (active & ~touches).any() else active
        rates[frozen] = level
        active &= ~frozen
    return rates
