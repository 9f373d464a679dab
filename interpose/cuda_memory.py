"""``torch.cuda`` memory statistics and the OOM message, from the caching-allocator model."""

from __future__ import annotations

from typing import Any

from interpose.cuda_device import device_index
from interpose.runtime import current

_GiB = float(1 << 30)


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


def reset() -> None:
    """Forget what a previous install recorded."""
    _memory_fraction.clear()


def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
    """Recorded for :func:`get_per_process_memory_fraction`; the simulated limit stays the scenario's."""
    _memory_fraction[device_index(device)] = float(fraction)


def get_per_process_memory_fraction(device: Any = None) -> float:
    return _memory_fraction.get(device_index(device), 1.0)


def record_memory_history(enabled: Any = "all", *args: Any, **kwargs: Any) -> None:
    """``torch.cuda.memory._record_memory_history`` (also its positional form)."""
    names = ("context", "stacks", "max_entries", "device", "clear_history")
    kwargs.update(zip(names, args, strict=False))
    history = current().allocator.history
    assert history is not None
    history.configure(enabled, **kwargs)


def snapshot(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``torch.cuda.memory._snapshot``: the simulated allocator's segments and recorded trace."""
    rt = current()
    history = rt.allocator.history
    assert history is not None
    return history.snapshot(rt.allocator, device_index(None))


def memory_snapshot(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """``torch.cuda.memory_snapshot``: the segments of :func:`snapshot`."""
    return snapshot()["segments"]


def dump_snapshot(filename: str = "dump_snapshot.pickle") -> None:
    import pickle

    with open(filename, "wb") as f:
        pickle.dump(snapshot(), f)
