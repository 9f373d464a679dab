"""Timing one op call on the GPU: median kernel time between CUDA events, and its host costs.

Split from :mod:`profiles.recorder` (which decides *what* to time while a script runs); used by
the recorder, ``--kernels-only`` and the replay model's on-demand profiling.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_map

from profiles.compute import OpSignature
from profiles.cost import family_of, op_bytes, op_flops, tensors_of
from profiles.store import ProfileEntry

_cuda_sync = torch.cuda.synchronize
"""The real synchronize (the recorder wraps ``torch.cuda.synchronize`` while a script runs)."""


@dataclass(slots=True)
class Timing:
    dur_us: float
    p10_us: float
    p90_us: float
    n: int
    launch_us: float


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def mutated_inputs(func: torch._ops.OpOverload) -> tuple[set[int], set[str]]:
    """Positions and names of the arguments the op writes to (in-place ``self``, ``out=``)."""
    pos: set[int] = set()
    names: set[str] = set()
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            pos.add(i)
            names.add(a.name)
    return pos, names


def _clone(x: Any) -> Any:
    return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, x)


def _safe_inputs(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    pos, names = mutated_inputs(func)
    if not pos:
        return args, kwargs
    args = tuple(_clone(a) if i in pos else a for i, a in enumerate(args))
    kwargs = {k: _clone(v) if k in names else v for k, v in kwargs.items()}
    return args, kwargs


def _sleep_cycles_per_us() -> float:
    try:
        return torch.cuda.get_device_properties(torch.cuda.current_device()).clock_rate / 1e3  # kHz -> per µs
    except Exception:
        return 1980.0


def time_call(
    func: torch._ops.OpOverload, args: tuple, kwargs: dict, *, repeats: int = 7, warmup: int = 2
) -> Timing:
    """Median GPU time (CUDA events; host clock on a CPU-only machine) of one op on these inputs."""
    args, kwargs = _safe_inputs(func, args, kwargs)
    cuda = any(t.is_cuda for t in tensors_of((args, kwargs))) or _factory_on_cuda(kwargs)
    host: list[float] = []
    for _ in range(max(1, warmup)):
        if cuda:
            _cuda_sync()
        t0 = time.perf_counter()
        func(*args, **kwargs)
        host.append((time.perf_counter() - t0) * 1e6)
    launch_us = statistics.median(host)
    durs: list[float] = []
    if cuda:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        _cuda_sync()
        ahead_us = min(50_000.0, repeats * (launch_us + 15.0) + 100.0)
        torch.cuda._sleep(int(ahead_us * _sleep_cycles_per_us()))
        steady: list[float] = []
        for s, e in zip(starts, ends, strict=True):
            s.record()
            t0 = time.perf_counter()
            func(*args, **kwargs)
            steady.append((time.perf_counter() - t0) * 1e6)
            e.record()
        _cuda_sync()
        durs = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends, strict=True)]
        # The host cost of a launch as a running program pays it: queued behind busy GPU work,
        # caches warm. The warm-up calls above follow a synchronize and carry first-call costs.
        launch_us = statistics.median(steady)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            func(*args, **kwargs)
            durs.append((time.perf_counter() - t0) * 1e6)
    return Timing(statistics.median(durs), _quantile(durs, 0.1), _quantile(durs, 0.9), len(durs), launch_us)


def _factory_on_cuda(kwargs: dict) -> bool:
    dev = kwargs.get("device")
    return dev is not None and torch.device(dev).type == "cuda"


def make_entry(
    sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any, timing: Timing
) -> ProfileEntry:
    """A profile entry for one measured signature, with the FLOPs/bytes the fitted fallback needs."""
    outs = tensors_of(out)
    dtype = sig.dtypes[0] if sig.dtypes else (str(outs[0].dtype).removeprefix("torch.") if outs else "")
    shapes = ";".join("x".join(map(str, s)) for s in sig.shapes[:8]) + (";..." if len(sig.shapes) > 8 else "")
    return ProfileEntry(
        key=sig.key(),
        op=sig.op,
        family=family_of(sig.op),
        dtype=dtype,
        shapes=shapes,
        flops=op_flops(func, args, kwargs, out),
        bytes=float(op_bytes(args, kwargs, out)),
        n_tensors=len(sig.shapes) + len(outs),
        dur_us=timing.dur_us,
        p10_us=timing.p10_us,
        p90_us=timing.p90_us,
        n=timing.n,
        launch_us=timing.launch_us,
    )
