"""Convolution output layouts as cuDNN chooses them, for fake cuda tensors on any torch build.

FakeTensorMode's convolution impl (``fake_impls.conv``, also ``convolution_backward``) asks the build's
C++ backend choice for the output memory format (``torch._C._conv_determine_backend_memory_format``).
A CPU build has no cuDNN, so a cuda-device conv gets the slow backend and a *contiguous* output even for
a channels_last input, where an H200 (cuDNN) returns channels_last. Eager ops after the conv then get
other keys, and Inductor inserts a layout copy after every extern conv and plans (and saves for backward)
different buffers: the compiled ResNet-18 of examples/compile/cnn.py peaked 11% low for that reason.
This applies cuDNN's rule (``cudnn_conv_suggest_memory_format``, cuDNN >= 8.0.5) to cuda inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch._prims_common import suggest_memory_format

from interpose.patching import Patcher


def cudnn_memory_format(x: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    """``cudnn_conv_suggest_memory_format``: channels_last(_3d) when input or weight is, float64 excluded."""
    if torch.float64 in (x.dtype, weight.dtype):
        return torch.contiguous_format
    formats = (suggest_memory_format(x), suggest_memory_format(weight))
    if weight.dim() == 4 and torch.channels_last in formats:
        return torch.channels_last
    if weight.dim() == 5 and torch.channels_last_3d in formats:
        return torch.channels_last_3d
    return torch.contiguous_format


def _make_determine(real: Any) -> Any:
    def determine(x: torch.Tensor, weight: torch.Tensor, backend: Any) -> torch.memory_format:
        if x.device.type != "cuda" or not torch.backends.cudnn.enabled:
            return real(x, weight, backend)
        return cudnn_memory_format(x, weight)

    return determine


def install_conv_layout(p: Patcher) -> None:
    p.set(torch._C, "_conv_determine_backend_memory_format",
          _make_determine(torch._C._conv_determine_backend_memory_format))
