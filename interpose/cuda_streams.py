"""``torch.cuda`` streams and events on the runtime's simulated stream timelines."""

from __future__ import annotations

from typing import Any

import torch

from interpose.cuda_device import device_index
from interpose.runtime import current
from interpose.streams import EventMark, StreamTimeline

_wrappers: dict[int, Stream] = {}
"""One ``Stream`` object per timeline id, so ``current_stream()`` returns equal, identical objects."""
_defaults: dict[int, StreamTimeline] = {}
"""Default streams of the devices other than the runtime's first one (made on first use)."""
_currents: dict[int, StreamTimeline] = {}
"""The current stream of each device that is not the current device (CUDA keeps one per device)."""


def reset() -> None:
    """Forget a previous install's streams."""
    _wrappers.clear()
    _defaults.clear()
    _currents.clear()


def default_timeline(d: int) -> StreamTimeline:
    """Device ``d``'s default stream: one process may drive several devices (``nn.DataParallel``)."""
    rt = current()
    if d == rt.default_stream.device:
        return rt.default_stream
    tl = _defaults.get(d)
    if tl is None:
        tl = _defaults[d] = rt.new_stream(0, d)
    return tl


def current_timeline(d: int) -> StreamTimeline:
    rt = current()
    if d == rt.device:
        return rt.current_stream
    return _currents.get(d) or default_timeline(d)


def select_device(d: int) -> None:
    """Make ``d`` the current device; the current stream becomes ``d``'s own current stream, as in
    CUDA, where each device keeps one (ops are queued on the current stream)."""
    rt = current()
    if d == rt.device:
        return
    _currents[rt.device] = rt.current_stream
    rt.device = d
    prev = _currents.pop(d, None)
    rt.current_stream = prev if prev is not None else default_timeline(d)


def _set_timeline(tl: StreamTimeline) -> None:
    """``torch.cuda.set_stream``: the stream's device becomes the current device (as torch's C++ does)."""
    select_device(tl.device)
    current().current_stream = tl


class Stream:
    """A simulated CUDA stream (replaces ``torch.cuda.Stream``)."""

    def __init__(self, device: Any = None, priority: int = 0, **_: Any) -> None:
        rt = current()
        self._tl: StreamTimeline = rt.new_stream(priority, device_index(device))
        _wrappers[self._tl.id] = self

    @classmethod
    def _wrap(cls, tl: StreamTimeline) -> Stream:
        s = _wrappers.get(tl.id)
        if s is None:
            s = cls.__new__(cls)
            s._tl = tl
            _wrappers[tl.id] = s
        return s

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self._tl.device)

    @property
    def device_index(self) -> int:
        return self._tl.device

    @property
    def device_type(self) -> int:
        return 1  # c10::DeviceType::CUDA

    @property
    def priority(self) -> int:
        return self._tl.priority

    @property
    def stream_id(self) -> int:
        return self._tl.id

    @property
    def cuda_stream(self) -> int:
        return self._tl.id

    def is_capturing(self) -> bool:
        return False  # CUDA graphs are not simulated

    def wait_event(self, event: Event) -> None:
        if event._mark is not None:
            current().stream_wait_event(self._tl, event._mark)

    def wait_stream(self, stream: Stream) -> None:
        self.wait_event(stream.record_event())

    def record_event(self, event: Event | None = None) -> Event:
        event = event or Event()
        event.record(self)
        return event

    def query(self) -> bool:
        rt = current()
        return rt.stream_ready_us(self._tl) <= rt.clock.host_us

    def synchronize(self) -> None:
        current().sync_stream(self._tl)

    def __enter__(self) -> Stream:
        self._ctx = StreamContext(self)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other._tl is self._tl

    def __hash__(self) -> int:
        return hash((self._tl.device, self._tl.id))

    def __repr__(self) -> str:
        return f"<torch.cuda.Stream device=cuda:{self._tl.device} cuda_stream={self._tl.id:#x}>"


class Event:
    """A simulated CUDA event (replaces ``torch.cuda.Event``); timing is always available."""

    def __init__(
        self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False, **_: Any
    ) -> None:
        self.enable_timing = enable_timing
        self._mark: EventMark | None = None

    def record(self, stream: Stream | None = None) -> None:
        s = stream or current_stream()
        self._mark = current().record_event(s._tl)

    def wait(self, stream: Stream | None = None) -> None:
        (stream or current_stream()).wait_event(self)

    def query(self) -> bool:
        if self._mark is None:
            return True
        rt = current()
        return rt.event_time_us(self._mark) <= rt.clock.host_us

    def synchronize(self) -> None:
        if self._mark is not None:
            rt = current()
            rt.wait_for(rt.event_time_us(self._mark))

    def elapsed_time(self, end_event: Event) -> float:
        """Milliseconds between the two recorded events on the simulated GPU."""
        if self._mark is None or end_event._mark is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        rt = current()
        return (rt.event_time_us(end_event._mark) - rt.event_time_us(self._mark)) / 1000.0

    @property
    def cuda_event(self) -> int:
        return id(self)


def current_stream(device: Any = None) -> Stream:
    return Stream._wrap(current_timeline(device_index(device)))


def default_stream(device: Any = None) -> Stream:
    return Stream._wrap(default_timeline(device_index(device)))


def set_stream(stream: Stream | None) -> None:
    if stream is not None:
        _set_timeline(stream._tl)


class StreamContext:
    """``with torch.cuda.stream(s):`` — makes ``s`` the current stream (and its device the current
    device); on exit both come back, and so does the current stream ``s``'s device had."""

    def __init__(self, stream: Stream | None) -> None:
        self.stream = stream
        self._prev: StreamTimeline | None = None
        self._dst_prev: StreamTimeline | None = None

    def __enter__(self) -> StreamContext:
        rt = current()
        self._prev = rt.current_stream
        if self.stream is not None:
            tl = self.stream._tl
            self._dst_prev = current_timeline(tl.device) if tl.device != self._prev.device else None
            _set_timeline(tl)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dst_prev is not None:
            _set_timeline(self._dst_prev)
        if self._prev is not None:
            _set_timeline(self._prev)


def stream(stream: Stream | None) -> StreamContext:
    return StreamContext(stream)
