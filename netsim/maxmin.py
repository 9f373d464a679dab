"""Weighted max-min fair rates by progressive filling, vectorised with numpy.

Flow ``f`` puts ``w[f, l] * rate_f`` on link ``l`` (``w`` < 1 for a sprayed connection,
the sum over a ring's hops for a ring flow). All unfrozen flows rise together; each round
raises them to the next link saturation (or per-flow cap) and freezes the flows on it.
Rounds = distinct bottleneck levels; each round is O(entries of still-unfrozen flows).
"""

from __future__ import annotations

import numpy as np


def max_min_rates(entry_flow: np.ndarray, entry_link: np.ndarray, entry_weight: np.ndarray,
                  n_flows: int, capacity: np.ndarray, max_rate: np.ndarray | None = None,
                  residual: np.ndarray | None = None) -> np.ndarray:
    """Rates (capacity units) of ``n_flows`` flows given their (flow, link, weight) incidence entries.

    ``residual`` (per link, default ``capacity``): what is left for these flows when others hold
    fixed rates on the same links (the engine's warm start); saturation tolerances stay relative
    to the full ``capacity`` so a sub-problem freezes flows exactly where the whole problem would.
    """
    rates = np.zeros(n_flows)
    if n_flows == 0:
        return rates
    # work on the links in use only (renumbered), not the whole fabric
    used_links, entry_link = np.unique(entry_link, return_inverse=True)
    capacity = capacity[used_links].astype(float)
    n_links = len(capacity)
    residual = capacity.copy() if residual is None else np.maximum(residual[used_links], 0.0)
    active = np.ones(n_flows, dtype=bool)
    cap = np.full(n_flows, np.inf) if max_rate is None else max_rate.astype(float)
    level = 0.0
    # flows touching no link are limited only by their cap
    touches = np.bincount(entry_flow, minlength=n_flows) > 0
    capped = bool(np.isfinite(cap).any())
    n_active = n_flows
    ef, el, ew = entry_flow, entry_link, entry_weight  # entries of unfrozen flows only
    while n_active:
        load = np.bincount(el, weights=ew, minlength=n_links)
        used = load > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(used, residual / np.where(used, load, 1.0), np.inf)
        step_link = share.min() if len(el) else np.inf
        step_cap = (cap[active] - level).min() if capped else np.inf
        step = max(0.0, min(step_link, step_cap))
        if not np.isfinite(step):
            raise ValueError("a flow with no links and no rate cap has unbounded rate")
        level += step
        residual -= step * load
        tight = used & (residual <= 1e-9 * np.maximum(capacity, 1e-30))
        frozen = np.zeros(n_flows, dtype=bool)
        frozen[ef[tight[el]]] = True
        if capped:
            frozen |= active & np.isfinite(cap) & (cap - level <= 1e-12 * np.maximum(cap, 1.0))
        frozen &= active
        if not frozen.any():  # numerical safety: freeze the most constrained flows
            frozen = active & ~touches if (active & ~touches).any() else active.copy()
        rates[frozen] = level
        active &= ~frozen
        n_active -= int(frozen.sum())
        keep = active[ef]  # drop frozen flows' entries: later rounds touch fewer
        ef, el, ew = ef[keep], el[keep], ew[keep]
    return rates
