"""Data semantics for collectives on *real* (non-fake) tensors: every rank is assumed to hold
the same values (the program is SPMD and its ranks are symmetric).

Fake tensors carry no data, so collectives on them only take time. But scripts also run
small real CPU collectives whose *values* steer control flow (DDP checks that every rank
has the same parameter shapes; loss/token counts get summed). Pretending all ranks agree
gives those helpers the answer they expect: an all_gather returns copies of my input, a
SUM all_reduce multiplies by the group size, and so on.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import is_fake
from torch.utils._python_dispatch import _disable_current_modes


def is_real(t: torch.Tensor) -> bool:
    return not is_fake(t) and t.device.type not in ("meta", "cuda")


def _scale(t: torch.Tensor, op: str, n: int) -> None:
    if op == "sum" and t.dtype != torch.bool:
        t.mul_(n)
    elif op == "product":
        t.pow_(n)


def all_reduce(tensors: list[torch.Tensor], op: str, n: int) -> None:
    with _disable_current_modes():
        for t in tensors:
            if is_real(t):
                _scale(t, op, n)


def all_gather(outputs: list[torch.Tensor], inp: torch.Tensor) -> None:
    if not is_real(inp):
        return
    with _disable_current_modes():
        for o in outputs:
            if is_real(o) and o.numel() == inp.numel():
                o.copy_(inp.reshape(o.shape))


def reduce_scatter(out: torch.Tensor, inputs: list[torch.Tensor], my: int, op: str, n: int) -> None:
    if not is_real(out) or my >= len(inputs) or not is_real(inputs[my]):
        return
    with _disable_current_modes():
        out.copy_(inputs[my].reshape(out.shape))
        _scale(out, op, n)


def copy_into(out: torch.Tensor, inp: torch.Tensor) -> None:
    if is_real(out) and is_real(inp) and out.numel() == inp.numel():
        with _disable_current_modes():
            out.copy_(inp.reshape(out.shape))
