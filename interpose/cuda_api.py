"""Python replacements for ``torch.cuda``: devices, streams, events, memory stats, RNG, nvtx.

The CPU build's ``torch.cuda`` calls ``torch._C._cuda_*`` functions that do not
exist; these versions answer from the scenario's :class:`~profiles.gpus.GpuSpec`
and the active :class:`~interpose.runtime.RankRuntime`.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any

import torch

from interpose.patching import Patcher
from interpose.runtime import RankRuntime, current
from interpose.streams import EventMark, StreamTimeline

_GiB = float(1 << 30)


def _device_index(device: Any = None) -> int:
    if device is None:
        return current().device
    if isinstance(device, int):
        return device
    if isinstance(device, str):
        device = torch.device(device)
    if isinstance(device, torch.device):
        return current().device if device.index is None else device.index
    return current().device


# -- streams and events ---------------------------------------------------------------
_wrappers: dict[int, Stream] = {}


class Stream:
    """A simulated CUDA stream (replaces ``torch.cuda.Stream``)."""

    def __init__(self, device: Any = None, priority: int = 0, **_: Any) -> None:
        rt = current()
        self._tl: StreamTimeline = rt.new_stream(priority, _device_index(device))
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
    return Stream._wrap(current().current_stream)


def default_stream(device: Any = None) -> Stream:
    return Stream._wrap(current().default_stream)


def set_stream(stream: Stream | None) -> None:
    if stream is not None:
        current().current_stream = stream._tl


class StreamContext:
    """``with torch.cuda.stream(s):`` — makes ``s`` the current stream."""

    def __init__(self, stream: Stream | None) -> None:
        self.stream = stream
        self._prev: StreamTimeline | None = None

    def __enter__(self) -> StreamContext:
        rt = current()
        self._prev = rt.current_stream
        if self.stream is not None:
            rt.current_stream = self.stream._tl
        return self

    def __exit__(self, *exc: object) -> None:
        if self._prev is not None:
            current().current_stream = self._prev


def stream(stream: Stream | None) -> StreamContext:
    return StreamContext(stream)


# -- devices ----------------------------------------------------------------------------
@dataclass
class DeviceProperties:
    """What ``torch.cuda.get_device_properties`` returns, from the GpuSpec."""

    name: str
    total_memory: int
    major: int
    minor: int
    multi_processor_count: int
    L2_cache_size: int
    is_integrated: bool = False
    is_multi_gpu_board: bool = False
    max_threads_per_multi_processor: int = 2048
    warp_size: int = 32
    regs_per_multiprocessor: int = 65536
    shared_memory_per_block_optin: int = 232448
    gcnArchName: str = "NVIDIA"
    uuid: str = "00000000-0000-0000-0000-000000000000"
    pci_bus_id: int = 0
    pci_device_id: int = 0
    pci_domain_id: int = 0


def device_count() -> int:
    return max(current().cfg.local_world_size, 1)


def current_device() -> int:
    return current().device


def set_device(device: Any) -> None:
    idx = _device_index(device)
    if idx < 0:
        return
    if idx >= device_count():
        raise RuntimeError("CUDA error: invalid device ordinal")
    current().device = idx


class device:
    """``with torch.cuda.device(i):`` — temporarily selects device ``i``."""

    def __init__(self, device: Any) -> None:
        self.idx = _device_index(device) if device is not None else -1
        self.prev_idx = -1

    def __enter__(self) -> None:
        rt = current()
        self.prev_idx = rt.device
        if self.idx >= 0:
            rt.device = self.idx

    def __exit__(self, *exc: object) -> None:
        current().device = self.prev_idx


def get_device_properties(device: Any = None) -> DeviceProperties:
    g = current().cfg.gpu
    return DeviceProperties(
        name=g.name,
        total_memory=g.total_memory_bytes,
        major=g.capability[0],
        minor=g.capability[1],
        multi_processor_count=g.sm_count,
        L2_cache_size=g.l2_cache_bytes,
    )


def get_device_name(device: Any = None) -> str:
    return current().cfg.gpu.name


def get_device_capability(device: Any = None) -> tuple[int, int]:
    return tuple(current().cfg.gpu.capability)  # type: ignore[return-value]


def get_arch_list() -> list[str]:
    major, minor = current().cfg.gpu.capability
    return [f"sm_{major}{minor}"]


def synchronize(device: Any = None) -> None:
    current().sync_device()


# -- memory -------------------------------------------------------------------------------
def memory_allocated(device: Any = None) -> int:
    return current().allocator.allocated_bytes


def max_memory_allocated(device: Any = None) -> int:
    return current().allocator.peak_allocated_bytes


def memory_reserved(device: Any = None) -> int:
    return current().allocator.reserved_bytes


def max_memory_reserved(device: Any = None) -> int:
    return current().allocator.peak_reserved_bytes


def reset_peak_memory_stats(device: Any = None) -> None:
    current().allocator.reset_peak()


def mem_get_info(device: Any = None) -> tuple[int, int]:
    """``(free, total)`` as ``cudaMemGetInfo``: free never exceeds total, whatever the memory limit."""
    a = current().allocator
    total = current().cfg.gpu.total_memory_bytes
    return min(max(a.limit_bytes - a.reserved_bytes, 0), total), total


def empty_cache() -> None:
    current().allocator.empty_cache()


def memory_stats(device: Any = None) -> dict[str, int]:
    st = current().allocator.stats()
    return {
        "allocated_bytes.all.current": st.allocated_bytes,
        "allocated_bytes.all.peak": st.peak_allocated_bytes,
        "active_bytes.all.current": st.allocated_bytes,
        "active_bytes.all.peak": st.peak_allocated_bytes,
        "reserved_bytes.all.current": st.reserved_bytes,
        "reserved_bytes.all.peak": st.peak_reserved_bytes,
        "active.all.current": st.active_blocks,
        "segment.all.current": st.segments,
        "allocation.all.allocated": st.num_allocs,
        "allocation.all.freed": st.num_frees,
        "num_alloc_retries": 0,
        "num_ooms": st.num_ooms,
    }


def memory_stats_as_nested_dict(device: Any = None) -> dict[str, Any]:
    """:func:`memory_stats` nested at its dots, as ``torch._C._cuda_memoryStats`` returns it."""
    out: dict[str, Any] = {}
    for key, value in memory_stats(device).items():
        *path, last = key.split(".")
        d = out
        for part in path:
            d = d.setdefault(part, {})
        d[last] = value
    return out


def memory_summary(device: Any = None, abbreviated: bool = False) -> str:
    st = current().allocator.stats()
    return (
        "|  simulated CUDA caching allocator (phantora)  |\n"
        f"| Allocated memory  | {st.allocated_bytes / _GiB:10.3f} GiB | peak {st.peak_allocated_bytes / _GiB:10.3f} GiB |\n"
        f"| Reserved memory   | {st.reserved_bytes / _GiB:10.3f} GiB | peak {st.peak_reserved_bytes / _GiB:10.3f} GiB |\n"
        f"| Segments          | {st.segments} | active blocks {st.active_blocks} | OOMs {st.num_ooms} |\n"
    )


def oom_message(request_bytes: int, allocated: int, reserved: int, limit: int, device_idx: int) -> str:
    """The text PyTorch's allocator puts in ``torch.cuda.OutOfMemoryError``."""
    free = max(limit - reserved, 0)
    return (
        f"CUDA out of memory. Tried to allocate {request_bytes / _GiB:.2f} GiB. GPU {device_idx} has a total "
        f"capacity of {limit / _GiB:.2f} GiB of which {free / _GiB:.2f} GiB is free. Of the allocated memory "
        f"{allocated / _GiB:.2f} GiB is allocated by PyTorch, and {(reserved - allocated) / _GiB:.2f} GiB is "
        "reserved by PyTorch but unallocated. (simulated by phantora)"
    )


_memory_fraction: dict[int, float] = {}


def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
    """Recorded for :func:`get_per_process_memory_fraction`; the simulated limit stays the scenario's."""
    _memory_fraction[_device_index(device)] = float(fraction)


def get_per_process_memory_fraction(device: Any = None) -> float:
    return _memory_fraction.get(_device_index(device), 1.0)


def _handle(*args: Any, **kwargs: Any) -> int:
    """``current_blas_handle``/``current_solver_handle``: a stand-in handle (no library context exists)."""
    return 0x5EED


def _snapshot(*args: Any, **kwargs: Any) -> dict[str, list]:
    return {"segments": [], "device_traces": []}


def _dump_snapshot(filename: str = "dump_snapshot.pickle") -> None:
    import pickle

    with open(filename, "wb") as f:
        pickle.dump(_snapshot(), f)


# -- RNG, nvtx, init ---------------------------------------------------------------------
def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def get_rng_state(device: Any = "cuda") -> torch.Tensor:
    return torch.zeros(16, dtype=torch.uint8)


def get_rng_state_all() -> list[torch.Tensor]:
    return [get_rng_state(i) for i in range(device_count())]


def initial_seed() -> int:
    return torch.initial_seed()


def seed() -> None:
    return None


@contextlib.contextmanager
def _nvtx_range(msg: str, *args: Any, **kwargs: Any):
    yield


GRAPH_LAUNCH_US = 5.0
"""Host cost charged for one ``cudaGraphLaunch`` (the whole graph): an assumed value, not measured here."""


class CUDAGraph:
    """``torch.cuda.CUDAGraph`` on the simulated GPU.

    Capture runs the captured code on fake tensors (shapes and memory as usual) but its kernels
    are recorded, not run: the host pays their launch costs, the GPU nothing. ``replay()`` queues
    the recorded kernels on the current stream behind a single graph launch, which is the point
    of CUDA graphs (one launch instead of one per kernel).
    """

    _pools = itertools.count(1)

    def __init__(self, keep_graph: bool = False) -> None:
        self.kernels: list[tuple[str, str, str, float, str]] = []
        self._pool = (next(self._pools), 0)

    def capture_begin(self, pool: Any = None, capture_error_mode: str = "global", **_: Any) -> None:
        rt = current()
        if rt.capture is not None:
            raise RuntimeError("CUDA graph capture already in progress")
        rt.capture = []

    def capture_end(self) -> None:
        rt = current()
        self.kernels, rt.capture = rt.capture or [], None

    def replay(self) -> None:
        rt = current()
        rt.clock.host_us += GRAPH_LAUNCH_US
        for name, shapes, dtype, dur, source in self.kernels:
            rt.launch(name, shapes, dtype, dur, 0.0, source)

    def instantiate(self) -> None:
        return None

    def reset(self) -> None:
        self.kernels = []

    def pool(self) -> tuple[int, int]:
        return self._pool

    def enable_debug_mode(self) -> None:
        return None

    def debug_dump(self, debug_path: str) -> None:
        return None


def graph_pool_handle() -> tuple[int, int]:
    return (next(CUDAGraph._pools), 0)


def is_current_stream_capturing() -> bool:
    return current().capture is not None


def install_cuda_api(p: Patcher, rt: RankRuntime) -> None:
    """Patch ``torch.cuda`` (and ``torch.cuda.memory``/``nvtx``) for the runtime ``rt``."""
    _wrappers.clear()
    _memory_fraction.clear()
    c = torch.cuda
    true = lambda *a, **k: True  # noqa: E731
    repl: dict[str, Any] = {
        "is_available": true,
        "is_initialized": true,
        "is_current_stream_capturing": is_current_stream_capturing,
        "CUDAGraph": CUDAGraph,
        "graph_pool_handle": graph_pool_handle,
        "is_bf16_supported": true,
        "init": _noop,
        "_lazy_init": _noop,
        "_is_in_bad_fork": lambda: False,
        "device_count": device_count,
        "current_device": current_device,
        "set_device": set_device,
        "device": device,
        "get_device_properties": get_device_properties,
        "get_device_name": get_device_name,
        "get_device_capability": get_device_capability,
        "get_arch_list": get_arch_list,
        "synchronize": synchronize,
        "Stream": Stream,
        "Event": Event,
        "current_stream": current_stream,
        "default_stream": default_stream,
        "set_stream": set_stream,
        "stream": stream,
        "StreamContext": StreamContext,
        "memory_allocated": memory_allocated,
        "max_memory_allocated": max_memory_allocated,
        "memory_reserved": memory_reserved,
        "max_memory_reserved": max_memory_reserved,
        "memory_cached": memory_reserved,
        "max_memory_cached": max_memory_reserved,
        "reset_peak_memory_stats": reset_peak_memory_stats,
        "reset_max_memory_allocated": reset_peak_memory_stats,
        "reset_max_memory_cached": reset_peak_memory_stats,
        "reset_accumulated_memory_stats": _noop,
        "mem_get_info": mem_get_info,
        "empty_cache": empty_cache,
        "memory_stats": memory_stats,
        "memory_summary": memory_summary,
        "manual_seed": _noop,
        "manual_seed_all": _noop,
        "seed": seed,
        "seed_all": seed,
        "initial_seed": initial_seed,
        "get_rng_state": get_rng_state,
        "get_rng_state_all": get_rng_state_all,
        "set_rng_state": _noop,
        "set_rng_state_all": _noop,
        "set_per_process_memory_fraction": set_per_process_memory_fraction,
        "get_per_process_memory_fraction": get_per_process_memory_fraction,
        "memory_stats_as_nested_dict": memory_stats_as_nested_dict,
        "memory_snapshot": lambda *a, **k: [],
        "current_blas_handle": _handle,
        "current_solver_handle": _handle,
        "ipc_collect": _noop,
    }
    for name, fn in repl.items():
        p.set(c, name, fn)
        if name in c.memory.__dict__:
            p.set(c.memory, name, fn)
        if name in c.random.__dict__:
            p.set(c.random, name, fn)
        if name in c.graphs.__dict__:
            p.set(c.graphs, name, fn)
    if not hasattr(torch._C, "_host_emptyCache"):  # CUDA builds only; torch.cuda.graph calls it
        p.set(torch._C, "_host_emptyCache", _noop)
    # memory-history tooling: accepted, records nothing (no per-block traces are kept)
    p.set(c.memory, "_record_memory_history", _noop)
    p.set(c.memory, "_snapshot", _snapshot)
    p.set(c.memory, "_dump_snapshot", _dump_snapshot)
    for name in ("range_push", "range_pop", "mark", "range_start", "range_end"):
        p.set(c.nvtx, name, _noop)
    p.set(c.nvtx, "range", _nvtx_range)
    # torch.amp checks availability through this helper; keep it consistent with is_available.
    p.set(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    _install_accelerator(p)
    _install_profiler(p)


def _install_profiler(p: Patcher) -> None:
    """``torch.profiler`` records host-side events only, on both builds of torch.

    CUDA is reported as a supported activity (as on a GPU), so ``use_device="cuda"`` and
    ``activities=[CPU, CUDA]`` profile as they would there, but the CUDA activity is dropped
    before it reaches the profiler's C++ (kineto): on a CUDA build that would start CUPTI, or
    record CUDA events, through the driver. For the same reason kineto is prepared, started and
    stopped with C++ seeing no CUDA (CUPTI starts whenever ``at::hasCUDA()`` is true).
    """
    import torch.autograd.profiler as ap
    from torch.autograd import ProfilerActivity, ProfilerState

    from interpose.cuda_guard import no_cuda_hooks

    def host_only(activities: Any) -> set:
        return {a for a in activities if a != ProfilerActivity.CUDA}

    def supported() -> set:
        return {*torch._C._autograd._supported_activities(), ProfilerActivity.CUDA}

    def wrap(fn: Any, takes_activities: bool) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if takes_activities and len(args) > 1:
                args = (args[0], host_only(args[1]), *args[2:])
            with no_cuda_hooks():
                return fn(*args, **kwargs)

        return call

    orig_config = ap.profile.config

    def config(self: Any, *args: Any, **kwargs: Any) -> Any:
        # legacy ``profile(use_device="cuda")`` without kineto: CUDA events per op, not recorded here
        if self.profiler_kind == ProfilerState.KINETO_GPU_FALLBACK:
            self.profiler_kind = ProfilerState.KINETO
        return orig_config(self, *args, **kwargs)

    p.set(ap.profile, "config", config)
    p.set(torch.autograd, "_supported_activities", supported)
    p.set(ap, "_supported_activities", supported)
    p.set(ap, "_prepare_profiler", wrap(ap._prepare_profiler, True))
    p.set(ap, "_enable_profiler", wrap(ap._enable_profiler, True))
    p.set(ap, "_disable_profiler", wrap(ap._disable_profiler, False))


def _install_accelerator(p: Patcher) -> None:
    """``torch.accelerator`` (device-generic code such as FSDP2) answers like ``torch.cuda``."""
    acc = getattr(torch, "accelerator", None)
    if acc is None:
        return
    repl: dict[str, Any] = {
        "is_available": lambda: True,
        "device_count": device_count,
        "current_device_index": current_device,
        "current_device_idx": current_device,
        "set_device_index": set_device,
        "set_device_idx": set_device,
        "current_stream": current_stream,
        "set_stream": set_stream,
        "synchronize": synchronize,
        "get_device_capability": lambda device=None: {
            "major": get_device_capability()[0],
            "minor": get_device_capability()[1],
        },
        "empty_cache": empty_cache,
        "get_memory_info": mem_get_info,
        "memory_allocated": memory_allocated,
        "max_memory_allocated": max_memory_allocated,
        "memory_reserved": memory_reserved,
        "max_memory_reserved": max_memory_reserved,
        "memory_stats": memory_stats,
        "reset_peak_memory_stats": reset_peak_memory_stats,
        "reset_accumulated_memory_stats": _noop,
    }
    mem = getattr(acc, "memory", None)
    for name, fn in repl.items():
        if hasattr(acc, name):
            p.set(acc, name, fn)
        if mem is not None and name in mem.__dict__:
            p.set(mem, name, fn)
