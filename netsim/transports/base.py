"""The transport interface.

A transport turns (route, connection identity) into link usage: an array of link ids
and, for each, the fraction of the connection's bytes that crosses it. A connection
whose bytes all take one path has weight 1 on that path's links; one sprayed evenly over
P paths has weight 1/P on each. The max-min engine then shares link capacity among
connections by those weights.

Hooks for subclasses: :meth:`path_weights` (which paths, what share) and the constructor's
overhead parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.registry import Registry
from netsim.topologies.base import Route

_MASK = (1 << 64) - 1


def mix64(*values: int) -> int:
    """Deterministic 64-bit hash (splitmix64 chain), standing in for a switch's 5-tuple hash."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK)) & _MASK
        h = (h + 0x9E3779B97F4A7C15) & _MASK
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        h = z ^ (z >> 31)
    return h


def mix64_many(prefix: int, values: np.ndarray) -> np.ndarray:
    """``mix64(*prefix_values, v)`` for every ``v``, vectorised (``prefix = mix64(*prefix_values)``)."""
    with np.errstate(over="ignore"):
        h = np.uint64(prefix) ^ values.astype(np.uint64)
        h = h + np.uint64(0x9E3779B97F4A7C15)
        z = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hashed_paths(seed: int, route: Route, conn: tuple[int, ...], qps: int) -> tuple[np.ndarray, np.ndarray]:
    """ECMP for ``qps`` queue pairs of connection ``conn``: each hashed (with ``seed``) onto one of the
    route's paths, the connection's bytes split evenly over them. ``(paths, weights summing to 1)``."""
    if qps == 1:  # NCCL's default: the same hash as the vector form, without numpy's per-call cost
        return np.array([mix64(seed, *conn, 0) % route.n_paths], dtype=np.uint64), np.ones(1)
    idx = mix64_many(mix64(seed, *conn), np.arange(qps)) % np.uint64(route.n_paths)
    paths, counts = np.unique(idx, return_counts=True)
    return paths, counts / qps


class Transport:
    """Base transport. ``message_latency_ns`` is added per collective step (per message);
    ``chunk_bytes``/``chunk_header_bytes`` inflate the bytes on the wire by the per-chunk header.
    ``congestion`` names the sender's congestion control in :data:`netsim.congestion.CONGESTION`
    (``none``: max-min shares at once; ``dcqcn``: RoCE's DCQCN fluid model), ``congestion_options``
    its parameters (:class:`netsim.congestion.DcqcnParams` fields, ``tick_ns``, ``substep_ns``)."""

    name = "base"

    def __init__(self, *, seed: int = 0, message_latency_ns: int = 0, chunk_bytes: int = 65536,
                 chunk_header_bytes: int = 0, congestion: str = "none",
                 congestion_options: dict[str, Any] | None = None) -> None:
        if chunk_bytes <= 0 or chunk_header_bytes < 0 or message_latency_ns < 0:
            raise ValueError("chunk_bytes must be > 0, chunk_header_bytes and message_latency_ns >= 0")
        from netsim.congestion import CONGESTION

        if congestion not in CONGESTION:
            raise ValueError(f"unknown congestion model {congestion!r}; valid: {', '.join(CONGESTION.names())}")
        model = CONGESTION.get(congestion)
        if model is not None:  # bad option names fail at load, not at the first collective
            model(np.ones(1), np.ones(1, dtype=bool), 1.0, **(congestion_options or {}))
        elif congestion_options:
            raise ValueError("congestion_options need a congestion model other than 'none'")
        self.congestion = congestion
        self.congestion_options = dict(congestion_options or {})
        self.seed = seed
        self.message_latency_ns = int(message_latency_ns)
        self.wire_factor = 1.0 + chunk_header_bytes / chunk_bytes

    def path_weights(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(path indices, weights summing to 1)`` for connection ``conn`` on ``route``."""
        raise NotImplementedError

    def spread(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(link ids, weights)`` of one connection: fixed links at 1, ECMP links by path share."""
        n_fixed = len(route.fixed)
        if not len(route.choices):
            return route.fixed.astype(np.int64), np.ones(n_fixed)
        idx, w = self.path_weights(route, conn)
        sel = route.choices[idx]  # (k, hops)
        links = np.concatenate([route.fixed, sel.reshape(-1)]).astype(np.int64)
        return links, np.concatenate([np.ones(n_fixed), np.repeat(w, sel.shape[1])])


TRANSPORTS: Registry[type[Transport]] = Registry("transport")


def build_transport(name: str, *, seed: int = 0, options: dict[str, Any] | None = None) -> Transport:
    """A transport by registry name; bad options raise ``ValueError`` naming the transport."""
    cls = TRANSPORTS.get(name)
    try:
        return cls(seed=seed, **(options or {}))
    except TypeError as e:
        raise ValueError(f"transport {name!r}: {e}") from None
