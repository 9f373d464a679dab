"""Output memory formats where a CUDA kernel and the fake (decomposed/meta) kernel disagree.

FakeTensorMode computes an op's output strides from its decomposition or meta function; a few CUDA
kernels lay their output out differently, which changes the next ops' keys (a channels_last grad
where the fake says contiguous) and their layout-dependent timings. Each entry restrides the fake
output as the CUDA kernel would; the data is fake, so only the strides change.

* ``native_batch_norm_backward``: the CUDA kernel allocates ``grad_input`` in the *input's* suggested
  memory format (``batch_norm_elementwise_backward_train``: ``empty_like(input,
  input.suggest_memory_format())``); the decomposition follows ``grad_out``. Seen on an H200 in timm
  EfficientNet-B0 (channels_last, bf16): the 1x1 conv's backward got a channels_last grad there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._prims_common import suggest_memory_format
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

aten = torch.ops.aten


def _restrided(mode: FakeTensorMode, t: FakeTensor, fmt: torch.memory_format) -> FakeTensor:
    meta = torch.empty(t.shape, dtype=t.dtype, device="meta", memory_format=fmt)
    return FakeTensor(mode, meta, t.device)


def _bn_backward(mode: FakeTensorMode, args: tuple, kwargs: dict, out: Any) -> Any:
    grad_input, x = out[0], args[1]
    if not isinstance(grad_input, FakeTensor) or grad_input.device.type != "cuda" or x.dim() not in (4, 5):
        return out
    fmt = suggest_memory_format(x)
    if grad_input.is_contiguous(memory_format=fmt):
        return out
    return (_restrided(mode, grad_input, fmt), *out[1:])


OUTPUT_LAYOUT: dict[Any, Callable[[FakeTensorMode, tuple, dict, Any], Any]] = {
    aten.native_batch_norm_backward.default: _bn_backward,
}
