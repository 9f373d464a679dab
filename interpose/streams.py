"""Simulated CUDA streams and events: per-stream timelines of GPU work.

A stream is a queue: each work item starts when both the host has issued it
and the previous item on the stream has finished. A work item is either a
compute op whose duration is known when it is issued, or *external* work (a
collective) whose end time a coordinator resolves later; see
:meth:`interpose.runtime.RankRuntime.enqueue_external`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class WorkHandle:
    """External work queued on a stream; ``end_us`` is ``None`` until resolved."""

    stream_id: int
    key: object
    """Whatever identifies the work to the resolver (e.g. a collective's sequence number)."""
    issue_us: float
    """Earliest start: host issue time and the stream's previous work, whichever is later."""
    end_us: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        return self.end_us is not None


class StreamTimeline:
    """One simulated stream: when its last queued work ends."""

    __slots__ = ("busy_us", "device", "id", "pending", "priority", "ready_us")

    def __init__(self, stream_id: int, device: int, priority: int = 0) -> None:
        self.id = stream_id
        self.device = device
        self.priority = priority
        self.ready_us = 0.0
        """End time of the last resolved work item."""
        self.pending: list[WorkHandle] = []
        """Unresolved external work, oldest first."""
        self.busy_us = 0.0


@dataclass(slots=True)
class EventMark:
    """What an event captured when recorded: a time, or external work still in flight."""

    stream_id: int
    time_us: float
    waits_on: WorkHandle | None = None
