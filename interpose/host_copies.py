"""Host<->device copies: ``_to_copy`` and ``copy_`` across the host link, timed by the GPU host's
measured copy times (:mod:`profiles.host_link`: pinned vs pageable, by size).

A copy to the host gives the known values (:mod:`interpose.values`) or zeros; a copy from the
host makes the destination known where the value policy keeps host data. Blocking copies make
the host wait for the stream, as ``cudaMemcpy`` does, and so do pageable ones: the driver stages
them through a pinned buffer and returns once it has, ``non_blocking=True`` or not.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch._subclasses.fake_tensor import FakeTensor

from interpose.fake_cuda import host_pinned
from interpose.op_args import is_cuda_device, shapes_text
from profiles.compute import signature_of
from profiles.host_link import host_link

if TYPE_CHECKING:
    from interpose.dispatch import Handler, SimDispatchMode

aten = torch.ops.aten

def copy_kernel(mode: SimDispatchMode, name: str, nbytes: int, shapes: str, dtype: str, blocking: bool,
                sig: Any = None, *, direction: str, pinned: bool = False) -> None:
    """Queue one host-link copy; ``sig`` is the op as the script called it (a kernel's own copies have none).
    ``direction``: ``h2d`` or ``d2h``; ``blocking``: the copy was asked for without ``non_blocking``; ``pinned``: its host buffer is pinned
    (copies made inside PyTorch, ``.item()`` and checkpoints go through pageable memory)."""
    rt = mode.rt
    link = host_link(rt.cfg.gpu.key)
    rt.host_model.setdefault("host_link", link.source)
    busy = rt.stream_ready_us(rt.current_stream) > rt.clock.host_us
    cost = link.cost(direction, nbytes, pinned, not blocking, busy)
    if sig is not None:
        rt.op_keys.append(rt.op_key(sig, cost.stream_us, "copy"))
    end = rt.launch(name, shapes, dtype, cost.stream_us, mode.model_launch_us(), "copy")
    if cost.blocks_host:
        rt.wait_for(end)


def _script_copy(mode: SimDispatchMode, name: str, moved: torch.Tensor, blocking: bool, func: Any, args: tuple,
                 kwargs: dict, direction: str, pinned: bool) -> None:
    """The script's own copy op crossing the host link: ``moved``'s bytes, logged under the op's signature."""
    shapes, dtype = shapes_text(args)
    copy_kernel(mode, name, moved.numel() * moved.element_size(), shapes, dtype, blocking,
                signature_of(func, args, kwargs), direction=direction, pinned=pinned)


def _on_device(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict, out: Any) -> Any:
    """A copy that stays on the GPU: an ordinary kernel."""
    mode.values.propagate(func, args, kwargs, out)
    mode.account(func, args, kwargs, out)
    return out


def _to_copy(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    dev = kwargs.get("device")
    src_fake = isinstance(x, FakeTensor)
    blocking = not kwargs.get("non_blocking", False)
    if src_fake and dev is not None and not is_cuda_device(dev):  # D2H
        real = mode.values.get(x)
        out_dtype = kwargs.get("dtype") or x.dtype
        if real is not None:
            out = real.to(dtype=out_dtype, copy=True)
        else:
            out = torch.zeros(x.shape, dtype=out_dtype, device=dev)
        # non_blocking: PyTorch gives the new host tensor pinned memory itself (an async D2H needs it)
        _script_copy(mode, "aten._to_copy.default(d2h)", x, blocking, func, args, kwargs, "d2h", not blocking)
        return out
    if src_fake:  # stays on the GPU (a cast, a move between devices): an ordinary kernel, result cache first
        return mode.simulate(func, args, kwargs)
    # H2D: copy from a metadata-only stand-in, so FakeTensorMode's converter keeps no weak reference
    # to the CPU tensor (``swap_tensors`` refuses weakly-referenced tensors, and ``Module._apply``
    # swaps the cuda copy into the old Parameter).
    host = x
    x = FakeTensor(mode.fake, torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta"), x.device)
    args = (x, *args[1:])
    out = _cached_fake_run(mode, func, args, kwargs)
    if mode.values.keepable(out, from_host=True):
        mode.values.put(out, host.to(out.dtype), from_host=True)
    mode.track(out)
    _script_copy(mode, "aten._to_copy.default(h2d)", x, blocking, func, args, kwargs, "h2d", host_pinned(host))
    return out


def _cached_fake_run(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    """``func`` on fake tensors, from the mode's result cache where it can (a data loader's every batch
    copies the same shapes: the full FakeTensorMode took ~0.3 ms per copy)."""
    cache = mode.outputs
    k = cache.key(func, args, kwargs)
    spec = cache.entries.get(k) if k is not None else None
    if spec is not None:
        return cache.build(spec, args)
    with mode.fake:
        out = func(*args, **kwargs)
    if k is not None and k not in cache.entries:
        cache.learn(k, args, out)
    return out


def _copy_(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    dst, src = args[0], args[1]
    blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
    dst_fake, src_fake = isinstance(dst, FakeTensor), isinstance(src, FakeTensor)
    if src_fake and not dst_fake and dst.device.type == "cpu":  # D2H into a real CPU tensor
        real = mode.values.get(src)
        if real is not None:
            dst.copy_(real)
        _script_copy(mode, "aten.copy_.default(d2h)", src, blocking, func, args, kwargs, "d2h", host_pinned(dst))
        return dst
    with mode.fake:
        out = func(*args, **kwargs)
    if dst_fake and not src_fake and src.device.type == "cpu":  # H2D
        _known_h2d(mode, dst, src)
        _script_copy(mode, "aten.copy_.default(h2d)", src, blocking, func, args, kwargs, "h2d", host_pinned(src))
        return out
    return _on_device(mode, func, args, kwargs, out)


def _known_h2d(mode: SimDispatchMode, dst: FakeTensor, src: torch.Tensor) -> None:
    """Host data copied into a fake tensor: into its shadow if it has one; a shadow for a
    destination it fills completely; otherwise its old known values are gone."""
    v = mode.values
    shadow = v.get(dst)
    if shadow is None and dst.numel() * dst.element_size() == dst.untyped_storage().nbytes():
        if v.keepable(dst, from_host=True):
            v.put(dst, src.expand(dst.shape), from_host=True)
        return
    if shadow is None or not v.keepable(dst, from_host=True):
        v.drop(dst)
    else:
        shadow.copy_(src)


def handlers(mode: SimDispatchMode) -> dict[Any, Handler]:
    """The copy ops' entries in the mode's special-op table."""
    return {
        aten._to_copy.default: partial(_to_copy, mode),
        aten.copy_.default: partial(_copy_, mode),
    }
