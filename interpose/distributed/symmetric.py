"""Data semantics for collectives on *real* (non-fake) tensors: every rank is assumed to hold
the same values (the program is SPMD and its ranks are symmetric).

Fake tensors carry no data, so collectives on them only take time. But scripts also run
small real CPU collectives, and collectives on simulated-GPU tensors whose values are known
(:mod:`interpose.values`: token counts, MoE split sizes, flags), whose *values* steer control
flow (DDP checks that every rank has the same parameter shapes; loss/token counts get summed;
expert-parallel all-to-alls exchange per-expert counts). Pretending all ranks agree gives those
helpers the answer they expect: an all_gather returns copies of my input, a SUM all_reduce
multiplies by the group size, and so on. A known destination written from unknown data becomes
unknown.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import is_fake
from torch.utils._python_dispatch import _disable_current_modes


def is_real(t: torch.Tensor) -> bool:
    return not is_fake(t) and t.device.type not in ("meta", "cuda")


def _known_view(t: torch.Tensor) -> torch.Tensor | None:
    from interpose.runtime import _current

    return None if _current is None else _current.values.get(t)


def tracked(t: torch.Tensor) -> bool:
    """Whether ``t`` holds data a collective must keep true: a real tensor, or a known fake one."""
    return is_real(t) or (is_fake(t) and _known_view(t) is not None)


def data(t: torch.Tensor) -> torch.Tensor | None:
    """The real data behind ``t`` (itself, or a known fake tensor's shadow), else ``None``."""
    if is_real(t):
        return t
    return _known_view(t) if is_fake(t) else None


def _forget(t: torch.Tensor) -> None:
    from interpose.runtime import _current

    if _current is not None and is_fake(t):
        _current.values.drop(t)


def _scale(t: torch.Tensor, op: str, n: int) -> None:
    if op == "sum" and t.dtype != torch.bool:
        t.mul_(n)
    elif op == "product":
        t.pow_(n)


def all_reduce(tensors: list[torch.Tensor], op: str, n: int) -> None:
    with _disable_current_modes():
        for t in tensors:
            d = data(t)
            if d is not None:
                _scale(d, op, n)


def _copy(out: torch.Tensor, src: torch.Tensor | None) -> torch.Tensor | None:
    d = data(out)
    if d is None:
        return None
    if src is None or d.numel() != src.numel():
        _forget(out)
        return None
    d.copy_(src.reshape(d.shape))
    return d


def all_gather(outputs: list[torch.Tensor], inp: torch.Tensor) -> None:
    with _disable_current_modes():
        src = data(inp)
        for o in outputs:
            _copy(o, src)


def reduce_scatter(out: torch.Tensor, inputs: list[torch.Tensor], my: int, op: str, n: int) -> None:
    with _disable_current_modes():
        d = _copy(out, data(inputs[my]) if my < len(inputs) else None)
        if d is not None:
            _scale(d, op, n)


def copy_into(out: torch.Tensor, inp: torch.Tensor) -> None:
    with _disable_current_modes():
        _copy(out, data(inp))
