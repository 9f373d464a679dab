"""``network.backend: alpha_beta``: every collective takes latency + bus bytes / bandwidth, alone.

No topology, no contention: NVLink bandwidth when the group sits in one host, the NIC's
otherwise. For tests and for an explicit, cheap first answer, never a silent stand-in for a
network netsim cannot build (that is an error naming the scenario field).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from common.kinds import CollectiveKind
from netsim.backend import NETWORK_BACKENDS, NetworkBackend
from netsim.collectives.base import bus_factor
from netsim.config import NetworkConfig

_KINDS = frozenset(k.value for k in CollectiveKind)


@NETWORK_BACKENDS.register("alpha_beta")
class AlphaBetaNetwork(NetworkBackend):
    """Ring-cost collectives at a fixed bandwidth per GPU; rank ``r`` lives on host ``r // gpus_per_host``."""

    transport_name = "ring"

    def __init__(self, *, gpus_per_host: int, nvlink_gbps: float = 450.0, nic_gbps: float = 50.0,
                 latency_us: float = 10.0) -> None:
        """``nvlink_gbps`` / ``nic_gbps``: GB/s (bytes) per GPU per direction (a 400 Gb/s NIC is 50);
        ``latency_us``: the fixed cost of one call."""
        self.gpus_per_host = gpus_per_host
        self.nvlink_gbps = nvlink_gbps
        self.nic_gbps = nic_gbps
        self.latency_us = latency_us
        self._heap: list[tuple[int, int]] = []  # (end_ns, handle)
        self._ends: dict[int, dict[int, int]] = {}
        self._now_ns = 0

    @classmethod
    def build(cls, hosts: int, gpus_per_host: int, config: NetworkConfig,
              transport: str | None = None) -> AlphaBetaNetwork:
        """From the scenario's NVLink and NIC rates and launch latency (topology and transport unused)."""
        return cls(gpus_per_host=gpus_per_host, nvlink_gbps=config.intra_host.nvlink_gbps_per_direction,
                   nic_gbps=config.nic.gbit / 8.0, latency_us=config.collectives.launch_latency_us)

    def supports(self, kind: str) -> bool:
        return kind in _KINDS

    def duration_ns(self, kind: str, ranks: Sequence[int], nbytes: int) -> int:
        """Latency + bus bytes / bandwidth, to the whole ns: every backend answers in whole ns, so the
        coordinator has one time base (a fraction of a ns is far below anything modelled)."""
        n = len(ranks)
        if n <= 1:
            return 0
        one_host = len({r // self.gpus_per_host for r in ranks}) == 1
        bw = self.nvlink_gbps if one_host else self.nic_gbps
        return round(self.latency_us * 1e3 + nbytes * bus_factor(kind, n) / bw)  # GB/s = bytes/ns

    def submit_collective(self, kind: str, ranks: Sequence[int], nbytes: int,
                          start_ns: Mapping[int, int] | int, tag: Any = None, *,
                          matrix: Sequence[Sequence[float]] | None = None) -> int:
        start = int(start_ns) if isinstance(start_ns, int) else max(int(start_ns[r]) for r in ranks)
        end = max(start, self._now_ns) + self.duration_ns(kind, ranks, nbytes)
        h = len(self._ends)
        self._ends[h] = {r: end for r in ranks}
        heapq.heappush(self._heap, (end, h))
        return h

    def next_event_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, t_ns: int) -> list[int]:
        done = []
        while self._heap and self._heap[0][0] <= t_ns:
            done.append(heapq.heappop(self._heap)[1])
        self._now_ns = max(self._now_ns, int(t_ns))
        return done

    def result(self, handle: int) -> dict[int, int]:
        return dict(self._ends[handle])

    @property
    def now_ns(self) -> int:
        return self._now_ns
