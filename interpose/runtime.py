"""RankRuntime: all simulated state of one rank (clock, streams, events, memory, op log).

Everything the shim patches talks to the single active runtime
(:func:`current`). The multi-rank coordinator plugs in at two points:

- :meth:`RankRuntime.enqueue_external` queues work whose end time is unknown
  when issued (a collective) and returns a :class:`~interpose.streams.WorkHandle`;
- :attr:`RankRuntime.resolver` is called with such a handle when its end time
  is first needed (a later op on that stream, a sync) and must return ``end_us``.
  It may block (e.g. waiting for the coordinator). The default resolver ends
  external work at ``issue_us + info["dur_us"]`` (0 if absent).

Every host-device synchronisation goes through :meth:`RankRuntime.wait_for`.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

from interpose.allocator import Block, CachingAllocator
from interpose.clock import VirtualClock
from interpose.config import OpRecord, RankConfig, RankResult
from interpose.cuda_guard import set_guard_device
from interpose.iterations import group_steps
from interpose.memory_history import MemoryHistory
from interpose.streams import EventMark, StreamTimeline, WorkHandle
from interpose.values import KnownValues

Resolver = Callable[[WorkHandle], float]


def default_resolver(handle: WorkHandle) -> float:
    return handle.issue_us + float(handle.info.get("dur_us", 0.0))


class RankRuntime:
    """Per-rank simulation state; one instance per process while the shim is installed."""

    def __init__(self, cfg: RankConfig) -> None:
        self.cfg = cfg
        self.rank = cfg.rank
        self.clock = VirtualClock(cfg.host_time == "measured", cfg.start_time_us)
        self.host_model: dict = {"mode": cfg.host_time}
        self.host_cost_scale = 1.0
        """Replayed host costs (launch, first call, framework gap) are the recording host's; a scenario
        naming its own host's CPU benchmark (``host.bench_us``) scales them by target / recording."""
        self.allocator = CachingAllocator(cfg.limit_bytes())
        self.allocator.history = MemoryHistory()
        self.allocator.history.now_us = lambda: self.clock.host_us
        self._reuse: int | None = None
        self.resolver: Resolver = default_resolver
        self._device = 0
        self.device = cfg.local_rank if cfg.local_rank < max(cfg.local_world_size, 1) else 0
        self._stream_ids = itertools.count(1)
        self.streams: dict[int, StreamTimeline] = {}
        self.default_stream = self.new_stream()  # id 0 on each device: the legacy default stream
        self.current_stream = self.default_stream
        self._op_rows: list[tuple] = []
        self.iterations: list[tuple[float, float]] = []
        self.forwards: list[tuple[float, float]] = []
        self._step_opts: list[int] = []  # per optimizer step: which optimizer (interpose.iterations)
        self._opt_tags: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._fwd_start_us = cfg.start_time_us
        self._iter_start_us = cfg.start_time_us
        self.syncs = 0
        self.gpu_busy_us = 0.0
        self._live: dict[int, Block] = {}
        self.oom = False
        self.values = KnownValues(cfg.values)
        """Shadows of the fake storages whose contents are known (:mod:`interpose.values`)."""
        self.compile_stats: Any = None
        """:class:`interpose.compile.CompileStats` of this rank (set at install)."""
        self.capture: list[tuple[str, str, str, float, str]] | None = None
        """Kernels launched while a CUDA graph is being captured (``None``: not capturing)."""
        self.op_keys: list[str] = []
        """Signature key (``profiles.OpSignature.key``) of every kernel-launching op in call order, as
        ``phantora profile --trace`` records them on a GPU; one shared string per distinct key."""
        self.key_times: dict[str, tuple[float, str]] = {}
        """Simulated GPU time (us) and timing source of each key in :attr:`op_keys`."""

    @property
    def device(self) -> int:
        """The current CUDA device (``torch.cuda.current_device()``)."""
        return self._device

    @device.setter
    def device(self, index: int) -> None:
        # C++ fills the index of ``.cuda()`` / ``.to("cuda")`` from its own guard: keep it in step
        self._device = index
        set_guard_device(index)

    # -- streams ----------------------------------------------------------------
    def new_stream(self, priority: int = 0, device: int | None = None) -> StreamTimeline:
        sid = 0 if not self.streams else next(self._stream_ids)
        s = StreamTimeline(sid, self.device if device is None else device, priority)
        self.streams[sid] = s
        return s

    def stream_ready_us(self, s: StreamTimeline) -> float:
        """When everything queued on ``s`` so far is done (resolving external work)."""
        if s.pending:
            for h in s.pending:
                if h.end_us is None:
                    h.end_us = max(self.resolver(h), h.issue_us)
                if h.end_us > s.ready_us:
                    s.ready_us = h.end_us
            s.pending.clear()
        return s.ready_us

    def launch(
        self,
        name: str,
        shapes: str,
        dtype: str,
        dur_us: float,
        launch_us: float,
        source: str,
        stream: StreamTimeline | None = None,
    ) -> float:
        """Issue a GPU op: the host pays ``launch_us``; the op runs after the stream's previous work."""
        clock = self.clock
        clock.host_us += launch_us * self.host_cost_scale
        if self.capture is not None:  # CUDA graph capture: recorded, not run (see cuda_graphs.CUDAGraph)
            self.capture.append((name, shapes, dtype, dur_us, source))
            return clock.host_us
        s = stream or self.current_stream
        ready = self.stream_ready_us(s) if s.pending else s.ready_us
        start = clock.host_us if clock.host_us > ready else ready
        end = start + dur_us
        s.ready_us = end
        s.busy_us += dur_us
        self.gpu_busy_us += dur_us
        self._op_rows.append((s.id, name, shapes, dtype, start, dur_us, source))
        return end

    def enqueue_external(self, stream: StreamTimeline | None, key: object, **info: object) -> WorkHandle:
        """Queue work with an unknown end time (a collective) on ``stream``; see module docstring."""
        if self.capture is not None:
            raise RuntimeError("phantora: collectives inside CUDA graph capture are not simulated")
        s = stream or self.current_stream
        ready = self.stream_ready_us(s)
        issue = max(self.clock.host_us, ready)
        h = WorkHandle(s.id, key, issue, None, dict(info))
        s.pending.append(h)
        return h

    def record_external(self, h: WorkHandle, name: str, shapes: str = "", dtype: str = "") -> None:
        """Put resolved external work into the op log (source ``external``)."""
        if h.end_us is None:
            h.end_us = max(self.resolver(h), h.issue_us)
        self._op_rows.append(
            (h.stream_id, name, shapes, dtype, h.issue_us, h.end_us - h.issue_us, "external")
        )

    # -- synchronisation ----------------------------------------------------------
    def wait_for(self, t_us: float) -> None:
        """The single host-device sync point: block the host clock until ``t_us``."""
        self.syncs += 1
        self.clock.wait_until(t_us)

    def sync_stream(self, s: StreamTimeline | None = None) -> None:
        self.wait_for(self.stream_ready_us(s or self.current_stream))

    def sync_device(self) -> None:
        self.wait_for(max((self.stream_ready_us(s) for s in self.streams.values()), default=0.0))

    def device_tail_us(self) -> float:
        return max((self.stream_ready_us(s) for s in self.streams.values()), default=0.0)

    def record_event(self, s: StreamTimeline | None = None) -> EventMark:
        s = s or self.current_stream
        waits = s.pending[-1] if s.pending else None
        return EventMark(s.id, max(s.ready_us, self.clock.host_us) if waits is None else s.ready_us, waits)

    def event_time_us(self, mark: EventMark) -> float:
        if mark.waits_on is not None:
            self.stream_ready_us(self.streams[mark.stream_id])
            mark.time_us = max(mark.time_us, mark.waits_on.end_us or 0.0)
            mark.waits_on = None
        return mark.time_us

    def stream_wait_event(self, s: StreamTimeline, mark: EventMark) -> None:
        t = self.event_time_us(mark)
        self.stream_ready_us(s)
        if t > s.ready_us:
            s.ready_us = t

    # -- memory -------------------------------------------------------------------
    def track_storage(self, storage: object, nbytes: int) -> None:
        """Allocate a block for a new fake-cuda storage; free it when the storage dies."""
        key = storage._cdata  # type: ignore[attr-defined]
        if key in self._live:
            return
        if nbytes == 0:  # the CUDA caching allocator hands out no block for an empty request
            self._reuse = None
            return
        reused = self._live.pop(self._reuse, None) if self._reuse is not None else None
        self._reuse = None
        self._live[key] = reused if reused is not None and reused.size >= nbytes else self.allocator.malloc(nbytes)
        weakref.finalize(storage, self._free, key)

    def reuse_block_of(self, storage: object | None) -> None:
        """The next new storage takes over ``storage``'s block (an in-place accumulation,
        :mod:`interpose.grad_accumulation`); ``None`` cancels. ``storage``'s own death then frees nothing."""
        self._reuse = storage._cdata if storage is not None else None  # type: ignore[attr-defined]

    def _free(self, key: int) -> None:
        # finalizers run wherever the script drops its last reference: the shim's bookkeeping is
        # not script time (≈4 µs per freed tensor here, hundreds per decoded token)
        clock = self.clock
        clock.enter_callback()
        try:
            b = self._live.pop(key, None)
            if b is not None:
                self.allocator.free(b)
        finally:
            clock.leave()

    # -- iterations ---------------------------------------------------------------
    def mark_step(self, opt: Any = None) -> None:
        """Optimizer step issued: the iteration ends when its GPU work (or the host) finishes. ``opt``
        (the optimizer) lets :func:`interpose.iterations.group_steps` join several optimizers' steps."""
        end = max(self.clock.host_us, self.device_tail_us())
        self.iterations.append((self._iter_start_us, end))
        try:
            tag = self._opt_tags.setdefault(opt, len(self._opt_tags)) if opt is not None else -1
        except TypeError:  # not weak-referenceable
            tag = id(opt)
        self._step_opts.append(tag)
        self._iter_start_us = end

    def mark_forward(self) -> None:
        """An outermost module forward returned: a forward "iteration" ends when its GPU work (or the
        host) finishes; one per generated token in ``generate()``."""
        end = max(self.clock.host_us, self.device_tail_us())
        self.forwards.append((self._fwd_start_us, end))
        self._fwd_start_us = end

    def op_key(self, sig, dur_us: float, source: str) -> str:
        """The key of a signature seen for the first time, with its simulated time kept for the trace."""
        key = sig.key()
        self.key_times[key] = (dur_us, source)
        return key

    # -- result -------------------------------------------------------------------
    def result(self) -> RankResult:
        r = self.rank
        ops = [OpRecord(r, *row) for row in self._op_rows]
        st = self.allocator.stats()
        steps, step_kind = group_steps(self.iterations, self._step_opts)
        return RankResult(
            rank=r,
            ops=ops,
            iterations=steps if self.iterations else list(self.forwards),
            iteration_kind=step_kind if self.iterations else "forward" if self.forwards else "none",
            peak_allocated_bytes=st.peak_allocated_bytes,
            peak_reserved_bytes=st.peak_reserved_bytes,
            gpu_busy_us=self.gpu_busy_us,
            end_time_us=max(self.clock.host_us, self.device_tail_us()),
            oom=self.oom,
            syncs=self.syncs,
            host_model=self.host_model | ({"load_probes": self.clock.probes, "slowdown_last": round(self.clock.slowdown, 3)}
                                          if self.clock.probes else {}),
            op_keys=self.op_keys,
            op_key_times=self.key_times,
            compile=self.compile_stats.as_dict() if self.compile_stats is not None else {},
        )


_current: RankRuntime | None = None


def current() -> RankRuntime:
    if _current is None:
        raise RuntimeError("interpose is not installed (no active RankRuntime)")
    return _current


def set_current(rt: RankRuntime | None) -> None:
    global _current
    _current = rt
