"""What the dispatch handlers ask of an op's arguments: fake or not, on the GPU, and as log text."""

from __future__ import annotations

from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor


def is_cuda_device(d: Any) -> bool:
    """Whether a ``device=`` argument (a ``torch.device``, string or index) names the simulated GPU."""
    if d is None:
        return False
    if isinstance(d, torch.device):
        return d.type == "cuda"
    return torch.device(d).type == "cuda"


def involves_fake(args: tuple, kwargs: dict) -> bool:
    """Whether an op touches the simulated GPU: a fake tensor (or list of them) or ``device='cuda'``."""
    for a in args:
        if isinstance(a, FakeTensor):
            return True
        if type(a) in (list, tuple) and a and isinstance(a[0], FakeTensor):
            return True
    if kwargs:
        d = kwargs.get("device")
        if d is not None and is_cuda_device(d):
            return True
        for v in kwargs.values():
            if isinstance(v, FakeTensor):
                return True
    return False


def dtype_text(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def shapes_text(args: tuple) -> tuple[str, str]:
    """The op log's ``shapes`` (``;``-joined, ``[n]`` prefix for lists) and the first tensor's dtype."""
    shapes = []
    dtype = ""
    for a in args:
        if isinstance(a, torch.Tensor):
            shapes.append("x".join(map(str, a.shape)))
            dtype = dtype or str(a.dtype).removeprefix("torch.")
        elif type(a) in (list, tuple) and a and isinstance(a[0], torch.Tensor):
            shapes.append(f"[{len(a)}]" + "x".join(map(str, a[0].shape)))
            dtype = dtype or str(a[0].dtype).removeprefix("torch.")
    return ";".join(shapes), dtype
