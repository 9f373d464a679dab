"""Connect the coordinated sink to the rank runtime (:class:`interpose.runtime.RankRuntime`).

NCCL's model, reproduced on the runtime's streams: each process group has its own
communication stream; a collective on it starts once the caller's current stream has
reached the call (and the group's previous collective has ended); ``Work.wait`` makes the
current stream wait for it. The runtime resolves external work lazily through its
``resolver`` hook, which here asks the coordinator (blocking only when the answer is
really needed: a later op on a waiting stream, or a host sync).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.protocol import CollectiveCall

if TYPE_CHECKING:
    from interpose.distributed.coordinated import CoordinatedSink
    from interpose.runtime import RankRuntime
    from interpose.streams import StreamTimeline, WorkHandle


class RuntimeTimeline:
    """:class:`~interpose.distributed.coordinated.RankTimeline` over the active RankRuntime.

    The runtime is looked up on first use, because ``run_script`` creates it after the
    process group module is installed.
    """

    def __init__(self) -> None:
        self._rt: RankRuntime | None = None
        self.sink: CoordinatedSink | None = None
        self.comm_streams: dict[str, StreamTimeline] = {}
        self.handles: dict[int, WorkHandle] = {}
        self.calls: dict[int, CollectiveCall] = {}
        self.threshold_us: float | None = None
        self._callback = None
        self.batch: set[int] | None = None
        """Handles placed in the open ``batch_isend_irecv`` group (they do not wait for each other)."""

    @property
    def rt(self) -> RankRuntime:
        if self._rt is None:
            from interpose.runtime import current

            rt = current()
            self._rt = rt
            rt.resolver = self._resolve
            launch = rt.launch

            def launch_and_check(*args, **kwargs):  # progress reports ride on op launches
                end = launch(*args, **kwargs)
                if self.threshold_us is not None and rt.clock.host_us >= self.threshold_us:
                    self._callback()
                return end

            rt.launch = launch_and_check  # type: ignore[method-assign]
        return self._rt

    def _resolve(self, wh: WorkHandle) -> float:
        assert self.sink is not None
        return self.sink.end_of(wh.key)  # type: ignore[arg-type]

    # --- RankTimeline ---------------------------------------------------------
    def host_us(self) -> float:
        return self.rt.clock.host_us

    def place_external(self, handle: int, call: CollectiveCall) -> tuple[float, tuple[int, ...], float, int]:
        from interpose.streams import WorkHandle

        rt = self.rt
        # NCCL gives every peer pair its own communicator (and stream) for send/recv
        key = call.group if not call.kind.is_p2p else f"{call.group}:p2p:{min(call.ranks)}-{max(call.ranks)}"
        comm = self.comm_streams.get(key)
        if comm is None:
            comm = self.comm_streams[key] = rt.new_stream()
        cur = rt.current_stream
        after: list[int] = []
        ready = max(rt.clock.host_us, cur.ready_us, comm.ready_us)
        batch = self.batch
        for s in (cur, comm):
            for h in s.pending:
                if batch is not None and h.key in batch:
                    continue
                if h.end_us is None:
                    after.append(h.key)  # type: ignore[arg-type]
                else:
                    ready = max(ready, h.end_us)
        wh = WorkHandle(comm.id, handle, ready, None, {"kind": call.kind, "bytes": call.nbytes})
        comm.pending.append(wh)
        if batch is not None:
            batch.add(handle)
        self.handles[handle] = wh
        self.calls[handle] = call
        return ready, tuple(dict.fromkeys(after)), 0.0, comm.id

    def resolve_external(self, handle: int, start_us: float, end_us: float) -> None:
        wh = self.handles.pop(handle, None)
        if wh is None:
            return
        wh.issue_us, wh.end_us = start_us, end_us
        call = self.calls.pop(handle)
        self.rt.record_external(wh, f"nccl:{call.kind}", f"{call.nbytes}B group={call.group}", call.dtype)

    def stream_wait_external(self, handle: int) -> None:
        cur = self.rt.current_stream
        wh = self.handles.get(handle)
        if wh is None:  # already resolved
            assert self.sink is not None
            end = self.sink.resolved[handle][1]
            cur.ready_us = max(cur.ready_us, end)
        elif wh not in cur.pending:
            cur.pending.append(wh)

    def host_advance_to(self, t_us: float) -> None:
        self.rt.wait_for(t_us)

    def begin_batch(self) -> None:
        self.batch = set()

    def end_batch(self) -> None:
        self.batch = None

    def set_threshold(self, t_us: float | None, callback) -> None:
        self.threshold_us = t_us
        self._callback = callback
