"""Single-process multi-GPU: ``torch.cuda.comm`` / ``torch.nn.parallel`` entry points (``nn.DataParallel``).

A CPU build of torch has no ``torch._C._scatter``, ``_gather``, ``_broadcast``, ``_broadcast_coalesced``
(nor the ``_nccl_*`` ones ``torch.cuda.nccl`` calls); a GPU build implements them in C++ as chunked
peer copies (scatter, gather) and NCCL broadcast/reduce over the process's devices. Here they are
the same copies and adds written with tensor ops, so the dispatcher simulates each one on the stream
of the device it runs on (:mod:`interpose.cuda_streams` keeps a current stream per device), and
each cross-device copy first waits for the source device's current stream, as CUDA's
device-to-device copy does.

``parallel_apply`` runs each replica in turn on the calling thread, each under its device and
stream: on a GPU one thread per device launches them, but they share the GIL, so their launches are
serialised anyway, while the kernels overlap on the devices' own streams, as they do here. The
shim's dispatch mode is the calling thread's, so replicas on other threads would not be simulated.

Limits: a peer copy is timed as a device copy of its bytes (no NVLink model of its own); the
allocator model is one pool for the whole process, so memory figures add up all its devices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from interpose import cuda_streams
from interpose.backward_hooks import raw_engine
from interpose.patching import Patcher


def _cuda(d: int) -> torch.device:
    return torch.device("cuda", d)


def _wait_for(src_device: int) -> None:
    """The current stream waits for ``src_device``'s current stream (before a copy out of it)."""
    cur = cuda_streams.current_stream()
    if src_device != cur.device_index:
        cur.wait_stream(cuda_streams.current_stream(src_device))


def _copy_to(t: torch.Tensor, d: int, stream: Any = None) -> torch.Tensor:
    """``t`` on device ``d`` (the same tensor if it is there), copied on ``stream`` or ``d``'s current one."""
    if t.device == _cuda(d):
        return t
    src = t.get_device()
    with torch.cuda.device(d), torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        if src >= 0:
            _wait_for(src)
        return t.to(_cuda(d), non_blocking=True)


def scatter(tensor: torch.Tensor, devices: Sequence[int], chunk_sizes: Sequence[int] | None, dim: int,
            streams: Sequence[Any] | None) -> list[torch.Tensor]:
    """``torch._C._scatter``: chunk ``tensor`` along ``dim``, chunk ``i`` to ``devices[i]``."""
    chunks = tensor.split(list(chunk_sizes), dim) if chunk_sizes else tensor.chunk(len(devices), dim)
    return [_copy_to(c, d, streams[i] if streams else None) for i, (d, c) in enumerate(zip(devices, chunks, strict=False))]


def scatter_out(tensor: torch.Tensor, out: Sequence[torch.Tensor], dim: int,
                streams: Sequence[Any] | None) -> list[torch.Tensor]:
    chunks = tensor.split([o.size(dim) for o in out], dim)
    for i, (o, c) in enumerate(zip(out, chunks, strict=False)):
        with torch.cuda.device(o.get_device()), (
            torch.cuda.stream(streams[i]) if streams and streams[i] is not None else contextlib.nullcontext()
        ):
            _wait_for(c.get_device())
            o.copy_(c, non_blocking=True)
    return list(out)


def gather(tensors: Sequence[torch.Tensor], dim: int, destination: int | None) -> torch.Tensor:
    """``torch._C._gather``: concatenate along ``dim`` on ``destination`` (-1: the CPU)."""
    size = list(tensors[0].shape)
    size[dim] = sum(t.size(dim) for t in tensors)
    dev = torch.device("cpu") if destination == -1 else _cuda(
        torch.cuda.current_device() if destination is None else destination)
    out = torch.empty(size, dtype=tensors[0].dtype, device=dev)
    return gather_out(tensors, out, dim)


def gather_out(tensors: Sequence[torch.Tensor], out: torch.Tensor, dim: int) -> torch.Tensor:
    parts = out.split([t.size(dim) for t in tensors], dim)
    with torch.cuda.device(out.get_device()) if out.is_cuda else contextlib.nullcontext():
        for part, t in zip(parts, tensors, strict=False):
            if out.is_cuda and t.is_cuda:
                _wait_for(t.get_device())
            part.copy_(t, non_blocking=out.is_cuda)
    return out


def broadcast(tensor: torch.Tensor, devices: Sequence[int]) -> list[torch.Tensor]:
    return [_copy_to(tensor, d) for d in devices]


def broadcast_out(tensor: torch.Tensor, out: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    for o in out:
        with torch.cuda.device(o.get_device()):
            _wait_for(tensor.get_device())
            o.copy_(tensor, non_blocking=True)
    return list(out)


def broadcast_coalesced(tensors: Sequence[torch.Tensor], devices: Sequence[int],
                        buffer_size: int = 10485760) -> list[list[torch.Tensor]]:
    """``torch._C._broadcast_coalesced``: the first device gets ``tensors`` themselves, the others
    copies, moved in flat buckets of at most ``buffer_size`` bytes per dtype (as the C++ does)."""
    out: list[list[torch.Tensor]] = [list(tensors)] + [[] for _ in devices[1:]]
    slots: list[list[Any]] = [[None] * len(tensors) for _ in devices[1:]]
    for bucket in _buckets(tensors, buffer_size):
        flat = _flatten_dense_tensors([tensors[i] for i in bucket])
        for k, d in enumerate(devices[1:]):
            pieces = _unflatten_dense_tensors(_copy_to(flat, d), [tensors[i] for i in bucket])
            for i, piece in zip(bucket, pieces, strict=False):
                slots[k][i] = piece
    for k in range(len(devices) - 1):
        out[k + 1] = slots[k]
    return out


def _buckets(tensors: Sequence[torch.Tensor], buffer_size: int) -> list[list[int]]:
    """Indices of ``tensors`` grouped by dtype into runs of at most ``buffer_size`` bytes."""
    open_: dict[torch.dtype, tuple[list[int], int]] = {}
    done: list[list[int]] = []
    for i, t in enumerate(tensors):
        idx, n = open_.get(t.dtype, ([], 0))
        size = t.numel() * t.element_size()
        if idx and n + size > buffer_size:
            done.append(idx)
            idx, n = [], 0
        open_[t.dtype] = ([*idx, i], n + size)
    return done + [idx for idx, _ in open_.values() if idx]


# ----------------------------------------------------------------------------- torch.cuda.nccl


def nccl_reduce(inputs: Sequence[torch.Tensor], output: torch.Tensor, root: int, op: int = 0,
                streams: Any = None, comms: Any = None) -> None:
    """``torch._C._nccl_reduce`` (SUM): ``output`` on the root's device gets the sum of ``inputs``."""
    _reduce_into(inputs, output, root)


def nccl_all_reduce(inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], op: int = 0,
                    streams: Any = None, comms: Any = None) -> None:
    _reduce_into(inputs, outputs[0], 0)
    broadcast_out(outputs[0], outputs[1:])


def nccl_broadcast(inputs: Sequence[torch.Tensor], root: int, streams: Any = None, comms: Any = None) -> None:
    broadcast_out(inputs[root], [t for i, t in enumerate(inputs) if i != root])


def _reduce_into(inputs: Sequence[torch.Tensor], output: torch.Tensor, root: int) -> None:
    d = output.get_device()
    with torch.cuda.device(d):
        acc = inputs[root].clone() if output is not inputs[root] else output
        for i, t in enumerate(inputs):
            if i != root:
                acc.add_(_copy_to(t, d))
        if acc is not output:
            output.copy_(acc)


# ----------------------------------------------------------------------------- parallel_apply


def parallel_apply(modules: Sequence[torch.nn.Module], inputs: Sequence[Any],
                   kwargs_tup: Sequence[dict[str, Any]] | None = None,
                   devices: Sequence[Any] | None = None) -> list[Any]:
    """``torch.nn.parallel.parallel_apply`` on the calling thread, replica by replica (see the module
    docstring); each replica runs under its device, that device's current stream and the caller's
    grad and autocast modes, as torch's worker threads do."""
    from torch._utils import _get_device_index

    if len(modules) != len(inputs):
        raise AssertionError(f"The number of modules {len(modules)} is not equal to the number of inputs "
                             f"{len(inputs)}")
    kwargs_tup = kwargs_tup if kwargs_tup is not None else ({},) * len(modules)
    devs = [_get_device_index(x, True) for x in (devices if devices is not None else [None] * len(modules))]
    streams = [torch.cuda.current_stream(d) for d in devs]
    autocast = torch.is_autocast_enabled("cuda")
    outputs = []
    for module, inp, kwargs, d, s in zip(modules, inputs, kwargs_tup, devs, streams, strict=False):
        if d is None:
            t = _first_tensor(inp)
            d = t.get_device() if t is not None else torch.cuda.current_device()
        with torch.cuda.device(d), torch.cuda.stream(s), torch.amp.autocast("cuda", enabled=autocast):
            out = module(*(inp if isinstance(inp, (list, tuple)) else (inp,)), **kwargs)
        _backward_on_device(out, d)
        outputs.append(out)
    return outputs


def _backward_on_device(out: Any, d: int) -> None:
    """Queue the replica's backward on device ``d``'s stream. On a GPU, autograd runs each device's
    nodes on that device's thread and stream; here backward runs on the calling thread and every op is
    queued on the current stream, so the replica's output nodes make ``d`` current when they run (the
    engine takes a replica's chain in one go: its nodes are newer than the previous replica's), and the
    device the backward started on comes back at its end."""
    t = _first_tensor(out)
    fn = getattr(t, "grad_fn", None)
    if fn is None:
        return

    def pre(grad_outputs: Any) -> None:
        if not _backward_from:  # the first replica node of this backward pass
            _backward_from.append(torch.cuda.current_device())
            raw_engine().queue_callback(_restore_device)
        cuda_streams.select_device(d)

    fn.register_prehook(pre)


_backward_from: list[int] = []
"""The current device when a backward pass reached its first replica node (restored at its end)."""


def _restore_device() -> None:
    if _backward_from:
        cuda_streams.select_device(_backward_from.pop())


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for x in obj:
            t = _first_tensor(x)
            if t is not None:
                return t
    if isinstance(obj, dict):
        for x in obj.values():
            t = _first_tensor(x)
            if t is not None:
                return t
    return None


def install_cuda_comm(p: Patcher) -> None:
    """Serve the multi-GPU entry points a CPU build lacks (and replace a CUDA build's, which call the
    driver), and run ``parallel_apply`` on the calling thread."""
    import importlib

    # by module path: torch.nn.parallel's attributes of these names are the functions, not the modules
    dp_mod = importlib.import_module("torch.nn.parallel.data_parallel")
    pa_mod = importlib.import_module("torch.nn.parallel.parallel_apply")
    C = torch._C
    for name, fn in {
        "_scatter": scatter, "_scatter_out": scatter_out, "_gather": gather, "_gather_out": gather_out,
        "_broadcast": broadcast, "_broadcast_out": broadcast_out, "_broadcast_coalesced": broadcast_coalesced,
        "_nccl_reduce": nccl_reduce, "_nccl_all_reduce": nccl_all_reduce, "_nccl_broadcast": nccl_broadcast,
    }.items():
        p.set(C, name, fn)
    p.set(pa_mod, "parallel_apply", parallel_apply)
    p.set(dp_mod, "parallel_apply", parallel_apply)
    p.set(torch.nn.parallel, "parallel_apply", parallel_apply)
