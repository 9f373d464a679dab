"""How long collectives take on the network: the :class:`NetworkTimer` interface the coordinator drives.

The coordinator only ever (1) submits a matched collective with its start time and
(2) pops completions up to a time it has proven safe. Any engine that can do that
plugs in: :class:`AlphaBetaTimer` (analytic ring model, no contention; for tests and explicit
use, never a silent stand-in for a network netsim cannot build) and the netsim adapter
(:mod:`phantora.coordinator.netsim_timer`: contention between all in-flight collectives).
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from dataclasses import dataclass

from common.registry import Registry
from interpose.protocol import CollectiveCall


@dataclass(frozen=True, slots=True)
class Completion:
    key: str
    end_us: float
    transport: str = ""


class NetworkTimer(ABC):
    """Event-driven network model. Times are simulated microseconds."""

    @abstractmethod
    def submit(self, call: CollectiveCall, start_us: float) -> None:
        """Add a matched collective whose data starts moving at ``start_us`` (≥ every popped time)."""

    @abstractmethod
    def next_event_us(self) -> float | None:
        """Earliest time at which a completion could happen, or ``None`` if nothing is in flight."""

    @abstractmethod
    def pop_until(self, t_us: float) -> list[Completion]:
        """Advance to ``t_us`` and return the collectives completing at or before it, in time order."""


def bus_factor(kind: str, n: int) -> float:
    """NCCL's bus-bandwidth factor: bytes each rank moves per byte of buffer (nccl-tests convention)."""
    if n <= 1:
        return 0.0
    if kind == "all_reduce":
        return 2.0 * (n - 1) / n
    if kind in ("all_gather", "reduce_scatter", "all_to_all", "gather", "scatter"):
        return (n - 1) / n
    return 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where global ranks live: rank r is on host ``r // gpus_per_host``."""

    gpus_per_host: int

    def host_of(self, rank: int) -> int:
        return rank // self.gpus_per_host


NETWORK_TIMERS: Registry[type[NetworkTimer]] = Registry("network timer")


@NETWORK_TIMERS.register("alpha_beta")
class AlphaBetaTimer(NetworkTimer):
    """Ring collectives at a fixed bandwidth: NVLink inside a host, the NIC between hosts; no contention."""

    def __init__(self, *, gpus_per_host: int, nvlink_gbps: float = 450.0, nic_gbps: float = 50.0,
                 latency_us: float = 10.0) -> None:
        """``nvlink_gbps``/``nic_gbps``: GB/s per GPU per direction (400 Gb/s NIC = 50 GB/s)."""
        self.placement = Placement(gpus_per_host=gpus_per_host)
        self.nvlink_gbps = nvlink_gbps
        self.nic_gbps = nic_gbps
        self.latency_us = latency_us
        self._heap: list[tuple[float, str]] = []

    def duration_us(self, call: CollectiveCall) -> float:
        n = len(call.ranks)
        if n <= 1:
            return 0.0
        hosts = {self.placement.host_of(r) for r in call.ranks}
        bw = self.nvlink_gbps if len(hosts) == 1 else self.nic_gbps
        moved = call.nbytes * bus_factor(call.kind, n)
        return self.latency_us + moved / (bw * 1e3)  # GB/s = 1e3 bytes/us

    def submit(self, call: CollectiveCall, start_us: float) -> None:
        heapq.heappush(self._heap, (start_us + self.duration_us(call), call.key))

    def next_event_us(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_until(self, t_us: float) -> list[Completion]:
        out = []
        while self._heap and self._heap[0][0] <= t_us:
            end, key = heapq.heappop(self._heap)
            out.append(Completion(key, end, "ring"))
        return out
