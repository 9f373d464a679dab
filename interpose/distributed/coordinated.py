"""The rank side of the coordinator protocol: a :class:`CollectiveSink` that streams collectives
to the coordinator and learns their end times from it.

The sink needs four things from the rank's runtime, gathered in :class:`RankTimeline`:
the host clock, a way to put an *external* item on a stream (the collective, whose end is
unknown until the coordinator resolves it), a way to resolve it, and threshold callbacks
for progress reports. :class:`NullTimeline` is the stand-in used without the interpose
runtime (tests, CPU-only scripts): time stands still except where collectives move it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Protocol

from common import protocol as wire
from common.protocol import CollectiveCall, CoordinatorMessage, RankChannel
from interpose.distributed.sink import CollectiveSink


class RankTimeline(Protocol):
    """What :class:`CoordinatedSink` needs from the rank runtime (times in simulated µs)."""

    def host_us(self) -> float: ...

    def place_external(self, handle: int, call: CollectiveCall) -> tuple[float, tuple[int, ...], float, int]:
        """Queue external item ``handle`` on ``call.group``'s communication stream after the caller's
        current stream; return ``(ready_us, after_handles, gap_us, stream_id)`` (see :class:`Issue`)."""
        ...

    def resolve_external(self, handle: int, start_us: float, end_us: float) -> None: ...

    def stream_wait_external(self, handle: int) -> None:
        """Make the caller's current stream wait for the item's end."""
        ...

    def host_advance_to(self, t_us: float) -> None:
        """The host waited until ``t_us`` (a sync point)."""
        ...

    def set_threshold(self, t_us: float | None, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the host clock reaches ``t_us`` (``None`` clears it)."""
        ...

    def begin_batch(self) -> None:
        """Items placed until :meth:`end_batch` do not wait for each other (a NCCL group)."""
        ...

    def end_batch(self) -> None: ...


class NullTimeline:
    """No runtime: the host clock only moves at sync points; collectives start when issued."""

    def __init__(self) -> None:
        self.now_us = 0.0
        self.ends: dict[int, float] = {}

    def host_us(self) -> float:
        return self.now_us

    def place_external(self, handle: int, call: CollectiveCall) -> tuple[float, tuple[int, ...], float, int]:
        return self.now_us, (), 0.0, 0

    def resolve_external(self, handle: int, start_us: float, end_us: float) -> None:
        self.ends[handle] = end_us

    def stream_wait_external(self, handle: int) -> None:
        return None

    def host_advance_to(self, t_us: float) -> None:
        self.now_us = max(self.now_us, t_us)

    def set_threshold(self, t_us: float | None, callback: Callable[[], None]) -> None:
        return None

    def begin_batch(self) -> None:
        return None

    def end_batch(self) -> None:
        return None


class CoordinatedSink(CollectiveSink):
    """Sends :class:`~common.protocol.Issue`, ``Block``, ``Progress``; applies ``Resolved``, ``Horizon``."""

    def __init__(self, rank: int, channel: RankChannel, timeline: RankTimeline | None = None) -> None:
        self.rank = rank
        self.ch = channel
        self.tl: RankTimeline = timeline or NullTimeline()
        self.blocking_waits = timeline is None
        """Without a runtime there are no streams: ``Work.wait`` blocks the host (gloo semantics)."""
        self.next_handle = 0
        self.resolved: dict[int, tuple[float, float]] = {}
        self.report_at_us: float | None = None
        self._payloads: dict[int, tuple[bytes | None, ...]] = {}
        self._ready_us: dict[int, float] = {}
        """Earliest start of each issued, unresolved collective (for :meth:`ended_by`)."""
        self.ch.send(wire.Hello(rank, os.getpid()))

    # --- incoming ------------------------------------------------------------
    def _apply(self, msg: CoordinatorMessage) -> wire.Unblock | None:
        if isinstance(msg, wire.Resolved):
            self.resolved[msg.handle] = (msg.start_us, msg.end_us)
            self._ready_us.pop(msg.handle, None)
            if msg.payloads is not None:
                self._payloads[msg.handle] = msg.payloads
            self.tl.resolve_external(msg.handle, msg.start_us, msg.end_us)
        elif isinstance(msg, wire.Horizon):
            self.report_at_us = msg.report_at_us
            self.tl.set_threshold(msg.report_at_us, self.report_progress)
            self.report_progress()
        elif isinstance(msg, wire.Unblock):
            return msg
        elif isinstance(msg, wire.Abort):  # the coordinator reports why; leave without unwinding the script
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(3)
        return None

    def drain(self) -> None:
        """Apply everything that has arrived, without blocking."""
        while self.ch.poll():
            self._apply(self.ch.recv())

    def _block(self, handles: tuple[int, ...], query_us: float | None = None, what: str = "") -> wire.Unblock:
        self.ch.send(wire.Block(self.rank, self.tl.host_us(), handles, query_us, what))
        while True:
            reply = self._apply(self.ch.recv())
            if reply is not None:
                self.report_at_us = None
                return reply

    def report_progress(self) -> None:
        """Send :class:`Progress` if the host clock has reached the coordinator's threshold."""
        t = self.report_at_us
        if t is not None and self.tl.host_us() >= t:
            self.report_at_us = None
            self.tl.set_threshold(None, self.report_progress)
            self.ch.send(wire.Progress(self.rank, self.tl.host_us()))

    # --- CollectiveSink --------------------------------------------------------
    def issue(self, call: CollectiveCall, payload: bytes | None = None) -> int:
        handle = self.next_handle
        self.next_handle += 1
        ready_us, after, gap_us, stream = self.tl.place_external(handle, call)
        after = tuple(h for h in after if h not in self.resolved)
        self._ready_us[handle] = ready_us
        self.ch.send(wire.Issue(self.rank, handle, call, self.tl.host_us(), ready_us, after, gap_us, stream, payload))
        self.drain()
        return handle

    def begin_batch(self) -> None:
        self.tl.begin_batch()

    def end_batch(self) -> None:
        self.tl.end_batch()

    def stream_wait(self, handle: int) -> None:
        if self.blocking_waits:
            self.wait_all((handle,), what="Work.wait()")
            self.tl.host_advance_to(self.resolved[handle][1])
        else:
            self.tl.stream_wait_external(handle)

    def end_of(self, handle: int, what: str = "stream waits on collective") -> float:
        """End time of ``handle``, blocking for the coordinator if it is not resolved yet."""
        if handle not in self.resolved:
            self.wait_all((handle,), what=what)
        return self.resolved[handle][1]

    def wait_all(self, handles: tuple[int, ...], what: str = "") -> None:
        """Block the host until every item in ``handles`` is resolved (the runtime's sync points call this)."""
        self.drain()
        missing = tuple(h for h in handles if h not in self.resolved)
        if missing:
            self._block(missing, what=what)

    def host_wait(self, handle: int, what: str = "Work.synchronize()") -> None:
        self.wait_all((handle,), what=what)
        self.tl.host_advance_to(self.resolved[handle][1])

    def payloads(self, handle: int) -> tuple[bytes | None, ...]:
        self.host_wait(handle)
        return self._payloads.pop(handle)

    def relayed(self, handle: int) -> tuple[bytes | None, ...]:
        # blocked like a stream dependency on the collective: the host clock stays where it is
        self.wait_all((handle,), what="broadcast of known values")
        return self._payloads.pop(handle, ())

    def is_completed(self, handle: int) -> bool:
        self.drain()
        now = self.tl.host_us()
        if handle in self.resolved:
            return self.resolved[handle][1] <= now
        return self._block((handle,), query_us=now, what="Work.is_completed()").completed

    def host_us(self) -> float:
        return self.tl.host_us()

    def ended_by(self, handle: int, t_us: float) -> bool:
        """Known end: compare; not started by ``t_us``: no; else ask the coordinator (a query
        block: the host clock stays where it is)."""
        self.drain()
        if handle in self.resolved:
            return self.resolved[handle][1] <= t_us
        if self._ready_us.get(handle, -1.0) > t_us:
            return False
        return self._block((handle,), query_us=t_us, what="NCCL watchdog poll").completed

    def finish(self, error: str | None = None, result: object = None) -> None:
        self.ch.send(wire.Finished(self.rank, self.tl.host_us(), error, result))
