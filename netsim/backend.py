"""The one interface every network backend answers (flow engine now, ns-3 later).

Times are integer nanoseconds of simulated time. The coordinator submits collectives
(or raw flows) as ranks reach them, asks for the next instant anything can happen,
advances to a time it has proven safe, and reads per-rank end times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any


class NetworkBackend(ABC):
    """Incremental network simulator. Capabilities are methods, not type checks."""

    transport_name: str = ""

    @abstractmethod
    def submit_collective(self, kind: str, ranks: Sequence[int], nbytes: int,
                          start_ns: Mapping[int, int] | int, tag: Any = None, *,
                          matrix: Sequence[Sequence[float]] | None = None) -> int:
        """Add a collective of ``kind`` over global ``ranks`` moving ``nbytes`` (nccl-tests "size");
        ``start_ns``: when each rank reaches it (or one time for all). ``matrix`` (``all_to_all``
        only): bytes ``ranks[i]`` sends to ``ranks[j]`` instead of ``nbytes / n`` to each. Returns a
        handle."""

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

    def run(self) -> list[int]:
        """Run until nothing is in flight; return finished handles."""
        done: list[int] = []
        while (t := self.next_event_ns()) is not None:
            done += self.run_until(t)
        return done

    def supports(self, kind: str) -> bool:
        """Whether ``kind`` can be submitted."""
        return False
