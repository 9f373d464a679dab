"""The one interface every network model answers, and the one registry that picks it.

Times are integer nanoseconds of simulated time. The coordinator submits collectives as
ranks reach them, asks for the next instant anything can happen, advances to a time it has
proven safe, and reads per-rank end times. ``network.backend`` in a scenario is a name in
:data:`NETWORK_BACKENDS` (``flow``: the flow-level engine, ``ns3``: packet-level ns-3,
``alpha_beta``: the analytic model without contention); nothing switches on the name.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from common.registry import Registry

if TYPE_CHECKING:
    from netsim.config import ClusterConfig, NetworkConfig


class NetworkBackend(ABC):
    """Incremental network simulator. Capabilities are methods, not type checks.

    Subclasses implement :meth:`build` (from a scenario's ``network`` block), the four
    time/submit methods and :meth:`supports`, and register under a name with
    ``@NETWORK_BACKENDS.register("name")``.
    """

    transport_name: str = ""
    """What the results table records as the collective's transport."""

    @classmethod
    @abstractmethod
    def build(cls, hosts: int, gpus_per_host: int, config: NetworkConfig,
              transport: str | None = None) -> NetworkBackend:
        """The backend for ``hosts x gpus_per_host`` GPUs; ``transport`` overrides the config's.
        A config it cannot model raises ``ValueError`` whose message starts with the field
        (``network.backend: ...``), so callers can name the file and the field."""

    @abstractmethod
    def submit_collective(self, kind: str, ranks: Sequence[int], nbytes: int,
                          start_ns: Mapping[int, int] | int, tag: Any = None, *,
                          matrix: Sequence[Sequence[float]] | None = None) -> int:
        """Add a collective of ``kind`` (a :class:`~common.kinds.CollectiveKind` the backend
        :meth:`supports`) over global ``ranks`` moving ``nbytes`` (nccl-tests "size"); ``start_ns``:
        when each rank reaches it (or one time for all). ``matrix`` (``all_to_all`` only): bytes
        ``ranks[i]`` sends to ``ranks[j]`` instead of ``nbytes / n`` to each. Returns a handle."""

    @abstractmethod
    def next_event_ns(self) -> int | None:
        """Earliest instant at which the state changes, or ``None`` when idle."""

    @abstractmethod
    def run_until(self, t_ns: int) -> list[int]:
        """Advance to ``t_ns``; return handles of collectives finished at or before it, in end order."""

    @abstractmethod
    def result(self, handle: int) -> dict[int, int]:
        """End time (ns) per rank of a finished collective."""

    @property
    @abstractmethod
    def now_ns(self) -> int:
        """Current simulated time."""

    @abstractmethod
    def supports(self, kind: str) -> bool:
        """Whether collectives of ``kind`` can be submitted."""

    def run(self) -> list[int]:
        """Run until nothing is in flight; return finished handles."""
        done: list[int] = []
        while (t := self.next_event_ns()) is not None:
            done += self.run_until(t)
        return done


NETWORK_BACKENDS: Registry[type[NetworkBackend]] = Registry("network backend")

_BACKEND_MODULES = ("netsim.engine", "netsim.alpha_beta", "netsim.ns3.backend")
"""Modules whose import registers a backend (imported on first use: they import netsim.config)."""


def backends() -> Registry[type[NetworkBackend]]:
    """:data:`NETWORK_BACKENDS` with every shipped backend registered (none imports ns-3 itself)."""
    for name in _BACKEND_MODULES:
        importlib.import_module(name)
    return NETWORK_BACKENDS


def build_network(cluster: ClusterConfig, *, hosts: int | None = None, gpus_per_host: int | None = None,
                  transport: str | None = None) -> NetworkBackend:
    """The backend ``cluster.network.backend`` names, for the cluster's shape (``hosts`` /
    ``gpus_per_host`` / ``transport`` override it). A phantora ``Scenario`` is a ``ClusterConfig``."""
    cfg = cluster.network
    return backends().get(cfg.backend).build(int(hosts or cluster.hosts), int(gpus_per_host or cluster.gpus_per_host),
                                             cfg, transport)
