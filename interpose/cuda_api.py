"""Python replacements for ``torch.cuda``: the patch table, plus RNG, nvtx, profiler, accelerator.

The CPU build's ``torch.cuda`` calls ``torch._C._cuda_*`` functions that do not
exist; the replacements answer from the scenario's :class:`~profiles.gpus.GpuSpec`
and the active :class:`~interpose.runtime.RankRuntime`: devices (:mod:`interpose.cuda_device`),
streams and events (:mod:`interpose.cuda_streams`), memory (:mod:`interpose.cuda_memory`),
CUDA graphs (:mod:`interpose.cuda_graphs`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from interpose import cuda_memory, cuda_random, cuda_streams, host_api
from interpose.cuda_device import (
    current_device,
    device,
    device_count,
    get_arch_list,
    get_device_capability,
    get_device_name,
    get_device_properties,
    set_device,
    synchronize,
)
from interpose.cuda_graphs import CUDAGraph, graph_pool_handle, is_current_stream_capturing
from interpose.cuda_memory import (
    empty_cache,
    get_per_process_memory_fraction,
    max_memory_allocated,
    max_memory_reserved,
    mem_get_info,
    memory_allocated,
    memory_reserved,
    memory_stats,
    memory_stats_as_nested_dict,
    memory_summary,
    oom_message,
    reset_peak_memory_stats,
    set_per_process_memory_fraction,
)
from interpose.cuda_streams import (
    Event,
    Stream,
    StreamContext,
    current_stream,
    default_stream,
    set_stream,
    stream,
)
from interpose.patching import Patcher
from interpose.runtime import RankRuntime

__all__ = ["install_cuda_api", "oom_message"]


def _handle(*args: Any, **kwargs: Any) -> int:
    """``current_blas_handle``/``current_solver_handle``: a stand-in handle (no library context exists)."""
    return 0x5EED


# -- RNG, nvtx, init ---------------------------------------------------------------------
def _noop(*args: Any, **kwargs: Any) -> None:
    return None


@contextlib.contextmanager
def _nvtx_range(msg: str, *args: Any, **kwargs: Any):
    yield


def install_cuda_api(p: Patcher, rt: RankRuntime) -> None:
    """Patch ``torch.cuda`` (and ``torch.cuda.memory``/``nvtx``) for the runtime ``rt``."""
    cuda_streams.reset()
    cuda_memory.reset()
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
        "manual_seed": cuda_random.manual_seed,
        "manual_seed_all": cuda_random.manual_seed_all,
        "seed": cuda_random.seed,
        "seed_all": cuda_random.seed_all,
        "initial_seed": cuda_random.initial_seed,
        "get_rng_state": cuda_random.get_rng_state,
        "get_rng_state_all": cuda_random.get_rng_state_all,
        "set_rng_state": cuda_random.set_rng_state,
        "set_rng_state_all": cuda_random.set_rng_state_all,
        "set_per_process_memory_fraction": set_per_process_memory_fraction,
        "get_per_process_memory_fraction": get_per_process_memory_fraction,
        "memory_stats_as_nested_dict": memory_stats_as_nested_dict,
        "memory_snapshot": cuda_memory.memory_snapshot,
        "current_blas_handle": _handle,
        "current_solver_handle": _handle,
        "ipc_collect": _noop,
    }
    repl["default_generators"] = cuda_random.default_generators()  # one per device, as _lazy_init fills it
    costs = host_api.costs_for(rt)  # what each call costs a GPU host
    host_api.wrap_functions(repl, costs, rt.clock)
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
    # memory-history tooling: the simulated allocator's blocks and alloc/free trace (interpose.memory_history)
    p.set(c.memory, "_record_memory_history", cuda_memory.record_memory_history)
    p.set(c.memory, "_snapshot", cuda_memory.snapshot)
    p.set(c.memory, "_dump_snapshot", cuda_memory.dump_snapshot)
    for name in ("range_push", "range_pop", "mark", "range_start", "range_end"):
        p.set(c.nvtx, name, _noop)
    p.set(c.nvtx, "range", _nvtx_range)
    host_api.install_methods(p, c.nvtx, costs, rt.clock)
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
