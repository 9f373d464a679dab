"""Where the simulated process group sends its collectives: the :class:`CollectiveSink` interface.

The process group knows c10d (what was called, how big, by whom); a sink knows time
(which stream the collective sits on, when it ends). Two sinks exist:

* :class:`LocalSink` — no coordinator (one rank, or unit tests): every collective ends
  the moment it is issued. Correct for a world of one, where NCCL moves nothing.
* ``interpose.distributed.coordinated.CoordinatedSink`` — streams the calls to the
  coordinator and resolves their end times from its answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from common.protocol import CollectiveCall


class CollectiveSink(ABC):
    """Time-keeper for collectives. Handles are ints, unique per rank.

    NCCL semantics the methods follow: ``issue`` enqueues on the group's communication
    stream after the work already queued on the caller's current stream and returns at
    once; ``stream_wait`` makes the caller's current stream wait for it (``Work.wait``);
    ``host_wait`` blocks the host until it ends (``Work.synchronize``); ``is_completed``
    asks, without blocking for long, whether it has ended by the host's current time.
    """

    @abstractmethod
    def issue(self, call: CollectiveCall, payload: bytes | None = None) -> int: ...

    @abstractmethod
    def payloads(self, handle: int) -> tuple[bytes | None, ...]:
        """Every member's payload of an object collective (host-waits for it first)."""

    def relayed(self, handle: int) -> tuple[bytes | None, ...]:
        """Every member's payload of a tensor collective that carried known values: waits for the
        coordinator's answer without moving the host clock (a GPU does not sync there; the program
        reads the values at a later sync). Empty when no member sent one."""
        return self.payloads(handle)

    @abstractmethod
    def stream_wait(self, handle: int) -> None: ...

    @abstractmethod
    def host_wait(self, handle: int) -> None: ...

    @abstractmethod
    def is_completed(self, handle: int) -> bool: ...

    def begin_batch(self) -> None:  # noqa: B027 - optional hook
        """Until :meth:`end_batch`, issued items do not wait for each other (``batch_isend_irecv``,
        NCCL's ``ncclGroupStart/End``): all start from the streams' state at the batch's start."""

    def end_batch(self) -> None:  # noqa: B027 - optional hook
        """Close the batch opened by :meth:`begin_batch`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called when the process group is destroyed."""


class LocalSink(CollectiveSink):
    """Every collective completes instantly; records what was issued (for tests and 1-rank runs)."""

    def __init__(self) -> None:
        self.calls: list[CollectiveCall] = []
        self.waited: list[int] = []
        self._payloads: list[bytes | None] = []

    def issue(self, call: CollectiveCall, payload: bytes | None = None) -> int:
        self.calls.append(call)
        self._payloads.append(payload)
        return len(self.calls) - 1

    def payloads(self, handle: int) -> tuple[bytes | None, ...]:
        """Without other ranks, every member is assumed to have sent what this one sent."""
        return (self._payloads[handle],) * len(self.calls[handle].ranks)

    def stream_wait(self, handle: int) -> None:
        self.waited.append(handle)

    def host_wait(self, handle: int) -> None:
        self.waited.append(handle)

    def is_completed(self, handle: int) -> bool:
        return True
