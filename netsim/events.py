"""The event heap: integer-nanosecond time, deterministic order for simultaneous events.

Keys are ``(time_ns, priority, seq)``: at one instant, lower :class:`Priority` runs first
and, within a priority, the event scheduled first runs first (``seq`` is a per-queue
counter), so two runs of the same inputs pop events in the same order.
"""

from __future__ import annotations

import heapq
from enum import IntEnum
from typing import Any


class Priority(IntEnum):
    """What happens first when events share a time."""

    FLOW_DONE = 0
    """Finish flows first, so capacity they free is seen by flows admitted at that instant."""
    COLLECTIVE_DONE = 1
    """Then report finished collectives."""
    ADMIT = 2
    """Then start new flows."""
    CC_TICK = 3
    """Last, advance congestion control (:mod:`netsim.congestion`) over the flows now running."""


class EventQueue:
    """A min-heap of ``(time_ns, priority, seq, payload)``."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0

    def push(self, time_ns: int, priority: Priority, payload: Any) -> None:
        heapq.heappush(self._heap, (int(time_ns), int(priority), self._seq, payload))
        self._seq += 1

    def peek_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[int, Priority, Any]:
        t, p, _, payload = heapq.heappop(self._heap)
        return t, Priority(p), payload

    def __len__(self) -> int:
        return len(self._heap)
