"""``F.one_hot`` on fake-cuda tensors issues the ops the CUDA kernel does.

``at::one_hot`` takes a functional path (``arange`` + ``eq`` + a cast to int64) for any tensor with the
Python or Meta dispatch key, i.e. for every fake tensor; on a real GPU it runs ``zeros`` and one
``scatter_`` (HF Mixtral's router on an H200: docs/conformance.md). ``aten.one_hot`` is
CompositeImplicitAutograd, so the dispatch mode never sees it: the function is wrapped instead.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor

aten = torch.ops.aten


def make_one_hot(orig):
    """Wrap ``torch.nn.functional.one_hot``: the CUDA path of ``at::one_hot`` for fake-cuda inputs."""

    def one_hot(tensor, num_classes=-1):
        if not isinstance(tensor, FakeTensor) or tensor.device.type != "cuda" or tensor.numel() == 0 \
                or tensor.dtype != torch.int64:
            return orig(tensor, num_classes)
        if num_classes == -1:  # the GPU reads the maximum back too (a sync)
            num_classes = int(tensor.max().item()) + 1
        ret = aten.zeros.default([*tensor.shape, num_classes], dtype=torch.int64, layout=torch.strided,
                                 device=tensor.device)
        return aten.scatter_.value(ret, -1, tensor.unsqueeze(-1), 1)

    return one_hot
