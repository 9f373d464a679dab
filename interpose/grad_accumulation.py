"""The autograd engine's in-place gradient accumulation, as a real GPU run has it.

Why: where two gradients of one tensor meet (a tied embedding and output layer, a residual
stream), the engine's input buffer adds the second into the first *in place* when the first is a
plain dense tensor that owns its storage (``torch/csrc/autograd/input_buffer.cpp``,
``can_accumulate_inplace``). It skips that whenever a dispatch mode is active
(``isTensorSubclassLike``), which under the shim is always: every accumulation allocates a third
buffer. For the tied 50304x512 fp32 embedding of examples/gpt that is 98 MiB more at the backward
peak than the GPU holds (simulated 1044.4 MiB, real 947.6 MiB on an H200; found with
``benchmarks/memory_diff.py``). So the sum takes over the first operand's block instead of a new
one: the same kernel and time (``add`` and ``add_`` cost alike), the memory the GPU has.

The engine's own test also wants the tensor's and its storage's use counts to be 1; the Python
side cannot see those, so a tensor that is a view into a larger storage is left out and the rest is
taken as the engine's (a sum inside a backward formula of the same shape, rare, is counted in
place too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch._prims_common import is_non_overlapping_and_dense_or_false as is_non_overlapping_and_dense
from torch._subclasses.fake_tensor import FakeTensor

aten = torch.ops.aten


def accumulates_in_place(args: tuple, kwargs: dict) -> bool:
    """Whether ``aten.add.Tensor(args)`` is an accumulation the engine would do in place (module doc)."""
    if torch.is_grad_enabled() or torch._C._current_autograd_node() is None:
        return False
    if len(args) != 2 or kwargs.get("alpha", 1) != 1:
        return False
    a, b = args
    return (
        isinstance(a, FakeTensor)
        and isinstance(b, FakeTensor)
        and a.fake_device.type == "cuda"
        and a.fake_device == b.fake_device
        and a.shape == b.shape
        and a.dtype == b.dtype
        and is_non_overlapping_and_dense(a)
        and a.untyped_storage().nbytes() == a.numel() * a.element_size()
    )


def handlers(mode: Any) -> dict[Any, Any]:
    """``aten.add.Tensor``: when it accumulates gradients, its output reuses argument 0's block."""

    def add(func: Any, args: tuple, kwargs: dict) -> Any:
        if accumulates_in_place(args, kwargs):
            mode.rt.reuse_block_of(args[0].untyped_storage())
        try:
            return mode.simulate(func, args, kwargs)
        finally:
            mode.rt.reuse_block_of(None)

    return {aten.add.Tensor: add}
