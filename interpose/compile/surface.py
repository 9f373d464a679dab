"""What Dynamo/Inductor ask of a GPU, answered by the simulated one while the shim is installed.

Inductor reads the device through ``torch._dynamo.device_interface.CudaInterface`` (whose static
methods were bound to ``torch.cuda`` at import, before the shim patched it), takes the current raw
stream from ``torch._C._cuda_getCurrentRawStream`` (absent from a CPU build), asks Triton's driver
for a target hash (which needs ``libcuda``), enters ``torch.cuda._DeviceGuard`` in the generated
wrapper and lets its own FakeTensorModes constant-fold small tensors on the device (real CUDA).
Each of those is pointed at the simulation here; nothing else of Inductor is changed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from interpose.patching import Patcher

BACKEND_HASH = "phantora-simulated-triton"
"""Triton backend hash Inductor puts in kernel metadata and cache keys: compiled artifacts of a
simulated GPU never mix with a real one's in the Inductor cache."""

_CUDA_STATICS = ("current_device", "set_device", "device_count", "stream", "current_stream", "set_stream",
                 "synchronize", "get_device_properties", "memory_allocated", "is_bf16_supported")  # fmt: skip


def _raw_stream(device: int | None = None) -> int:
    """``get_raw_stream``: the simulated current stream's id (the wrapper passes it to ``.run``)."""
    from interpose.runtime import current

    return int(current().current_stream.id)


def _exchange_device(device: int) -> int:
    prev = torch.cuda.current_device()
    if device >= 0 and device != prev:
        torch.cuda.set_device(device)
    return prev


def _empty_strided_cuda(size: Any, stride: Any, dtype: torch.dtype) -> torch.Tensor:
    """The wrapper's buffer allocation (C++ on a GPU, past the dispatcher's Python key): through the
    shim's dispatch mode, so the allocator model charges it."""
    return torch.empty_strided(size, stride, dtype=dtype, device="cuda")


def _reinterpret_tensor(t: torch.Tensor, size: Any, stride: Any, offset_increment: int = 0) -> torch.Tensor:
    """The wrapper's view of a planned buffer (C++ ``alias_with_sizes_and_strides`` on a GPU)."""
    return torch.ops.aten.as_strided.default(t, size, stride, t.storage_offset() + offset_increment)


class _FactoriesOnCpu(TorchDispatchMode):
    """Inductor's constant folders evaluate small constant subgraphs for real on the graph's device
    (only factories reach them: graph inputs are never constants). The simulated GPU has no memory to
    run them in, so they run on the CPU: the values are the same."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        dev = kwargs.get("device")
        if dev is not None and torch.device(dev).type == "cuda":
            kwargs = {**kwargs, "device": torch.device("cpu")}
        return func(*args, **kwargs)


def _make_fold_run(run: Any) -> Any:
    def fold_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _FactoriesOnCpu():
            return run(self, *args, **kwargs)

    return fold_run


def _benchmark_gpu(fn: Any, *args: Any, **kwargs: Any) -> float:
    """Inductor's compile-time GPU benchmark (``benchmarker.benchmark_gpu``, e.g. pad_mm's padded-vs-plain
    matmul choice), answered on the simulated GPU: ``fn``'s kernels are recorded as in a CUDA-graph
    capture, not run, and their simulated times summed (ms). The host clock is left as it was."""
    from interpose.runtime import current

    rt = current()
    host, capture = rt.clock.host_us, rt.capture
    rt.capture = []
    try:
        with _sim_mode():
            fn()
        kernels = rt.capture
    finally:
        rt.capture, rt.clock.host_us = capture, host
    return sum(k[3] for k in kernels) / 1e3


def _sim_mode() -> Any:
    """The shim's dispatch mode (off while Inductor compiles), to enter for work Inductor does on the GPU."""
    from interpose import runner

    if runner._state is None:
        raise RuntimeError("phantora: a compile-time GPU benchmark outside the simulation")
    return runner._state.mode


def install_surface(p: Patcher) -> None:
    """Point Inductor's device queries at the simulated GPU (after :mod:`interpose.cuda_api` patched
    ``torch.cuda``)."""
    import torch._dynamo
    import torch.utils._triton as triton_utils
    from torch._dynamo.device_interface import CudaInterface
    from torch._subclasses.fake_tensor import FakeTensorMode

    for name in _CUDA_STATICS:
        p.set(CudaInterface, name, staticmethod(getattr(torch.cuda, name)))
    p.set(CudaInterface, "get_raw_stream", staticmethod(_raw_stream))
    p.set(CudaInterface, "exchange_device", staticmethod(_exchange_device))
    p.set(CudaInterface, "maybe_exchange_device", staticmethod(_exchange_device))
    p.set(torch._C, "_cuda_getCurrentRawStream", _raw_stream)
    guards = torch._C._dynamo.guards
    p.set(guards, "_empty_strided_cuda", _empty_strided_cuda)
    p.set(guards, "_reinterpret_tensor", _reinterpret_tensor)
    p.set(guards, "copy_if_misaligned", lambda t: t)  # the allocator model's blocks are 512-byte aligned
    if not hasattr(torch._C, "_cuda_cudaCachingAllocator_is_enabled"):  # a CPU build
        p.set(torch._C, "_cuda_cudaCachingAllocator_is_enabled", lambda: True)
    p.set(torch.cuda, "_exchange_device", _exchange_device)
    p.set(torch.cuda, "_maybe_exchange_device", _exchange_device)
    p.set(triton_utils, "triton_hash_with_backend", lambda: BACKEND_HASH)
    # Dynamo's and Inductor's own fake modes must not run constant subexpressions on "cuda" for real
    p.set(FakeTensorMode, "avoid_device_init", property(lambda self: True))
    from torch._inductor.constant_folding import ConstantFolder

    p.set(ConstantFolder, "run", _make_fold_run(ConstantFolder.run))
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.benchmarking import benchmarker

    p.set(benchmarker, "benchmark_gpu", _benchmark_gpu)
    # pad_mm benchmarks padded against unaligned matmuls on the GPU while compiling, on tensors it makes
    # there: off (documented divergence: a GPU may pad an unaligned matmul, e.g. a vocabulary of 65)
    p.set(inductor_config, "shape_padding", False)
    _dynamo_handlers(p)


def _dynamo_handlers(p: Patcher) -> None:
    """Dynamo keys its special handling of ``torch.cuda.current_stream`` & co. by function identity,
    and raises if two names are the same function; the shim serves several of them with one
    function. Build the table from torch's own functions (saved by the patcher) once, so a traced
    ``torch.cuda.current_stream()`` is handled as on a GPU."""
    from torch._dynamo.variables.torch import TorchInGraphFunctionVariable

    get = TorchInGraphFunctionVariable._get_handlers
    cache_info = getattr(get, "cache_info", None)
    if cache_info is not None and cache_info().currsize:
        return
    from interpose.patching import _MISSING

    saved = [(obj, name, getattr(obj, name)) for obj, name, old in p._saved if old is not _MISSING
             and isinstance(obj, type(torch)) and obj.__name__ in ("torch.cuda", "torch.accelerator")]
    for obj, name, _ in saved:
        setattr(obj, name, _original(p, obj, name))
    try:
        get()
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def _original(p: Patcher, obj: Any, name: str) -> Any:
    """The first value the patcher saved for ``obj.name`` (torch's own)."""
    return next(old for o, n, old in p._saved if o is obj and n == name)
