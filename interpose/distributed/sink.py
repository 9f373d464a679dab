"""Where the simulated process group sends its collectives: the :class:`CollectiveSink` interface.

The process group knows c10d (what was called, how big, by whom); a sink knows time
(which stream the collective sits on, when it ends). Two sinks exist:

* :class:`LocalSink` — no coordinator (one rank, or unit tests): every collective takes no
  time. Correct for a world of one, where NCCL moves nothing.
* ``interpose.distributed.coordinated.CoordinatedSink`` — streams the calls to the
  coordinator and resolves their end times from its answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from common.protocol import CollectiveCall

if TYPE_CHECKING:
    from interpose.runtime import RankRuntime


def _runtime() -> RankRuntime | None:
    """The active rank runtime, if any (looked up late: sinks are made before it exists)."""
    from interpose.runtime import current

    try:
        return current()
    except RuntimeError:
        return None


class CollectiveSink(ABC):
    """Time-keeper for collectives. Handles are ints, unique per rank.

    NCCL semantics the methods follow: ``issue`` enqueues on the group's communication
    stream after the work already queued on the caller's current stream and returns at
    once; ``stream_wait`` makes the caller's current stream wait for it (``Work.wait``);
    ``host_wait`` blocks the host until it ends (``Work.synchronize``); ``is_completed``
    asks, without blocking for long, whether it has ended by the host's current time;
    ``ended_by`` whether it ended by an earlier time (the NCCL watchdog's last poll,
    :mod:`interpose.distributed.stash`).
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
    def host_wait(self, handle: int, what: str = "Work.synchronize()") -> None:
        """Block the host until ``handle`` ends; ``what`` names the wait in a deadlock report."""

    @abstractmethod
    def is_completed(self, handle: int) -> bool: ...

    @abstractmethod
    def host_us(self) -> float:
        """The rank's simulated host clock (µs)."""

    @abstractmethod
    def ended_by(self, handle: int, t_us: float) -> bool:
        """Whether collective ``handle`` ended on the GPU by ``t_us`` (``t_us`` <= the host clock)."""

    def begin_batch(self) -> None:  # noqa: B027 - optional hook
        """Until :meth:`end_batch`, issued items do not wait for each other (``batch_isend_irecv``,
        NCCL's ``ncclGroupStart/End``): all start from the streams' state at the batch's start."""

    def end_batch(self) -> None:  # noqa: B027 - optional hook
        """Close the batch opened by :meth:`begin_batch`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called when the process group is destroyed."""


class LocalSink(CollectiveSink):
    """Every collective takes no time; records what was issued (for tests and 1-rank runs).

    A collective still sits on the GPU after the work queued before it on the caller's stream
    (NCCL's stream waits on it), so it *ends* when that stream reaches it: with an active rank
    runtime that is ``max(host, current stream's tail)`` at issue; without one, time is 0."""

    def __init__(self) -> None:
        self.calls: list[CollectiveCall] = []
        self.waited: list[int] = []
        self._payloads: list[bytes | None] = []
        self._ends: list[float] = []

    def issue(self, call: CollectiveCall, payload: bytes | None = None) -> int:
        self.calls.append(call)
        self._payloads.append(payload)
        rt = _runtime()
        self._ends.append(max(rt.clock.host_us, rt.stream_ready_us(rt.current_stream)) if rt is not None else 0.0)
        return len(self.calls) - 1

    def host_us(self) -> float:
        rt = _runtime()
        return rt.clock.host_us if rt is not None else 0.0

    def ended_by(self, handle: int, t_us: float) -> bool:
        return self._ends[handle] <= t_us

    def payloads(self, handle: int) -> tuple[bytes | None, ...]:
        """Without other ranks, every member is assumed to have sent what this one sent."""
        return (self._payloads[handle],) * len(self.calls[handle].ranks)

    def stream_wait(self, handle: int) -> None:
        self.waited.append(handle)

    def host_wait(self, handle: int, what: str = "Work.synchronize()") -> None:
        self.waited.append(handle)

    def is_completed(self, handle: int) -> bool:
        return True
