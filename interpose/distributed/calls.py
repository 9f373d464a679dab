"""Describe one c10d call as a :class:`~common.protocol.CollectiveCall`: sizes, call site, keys.

Kept apart from the process group so the rules that make keys identical on every
member rank (per-group sequence numbers, per-pair p2p counters) live in one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

import torch

_SKIP_PARTS = (  # folders end in a separator: site-packages/torchtitan is not torch
    f"{Path(torch.__file__).parent}{os.sep}",
    f"{Path(__file__).resolve().parent.parent}{os.sep}",  # interpose/
    f"{Path(__file__).resolve().parent.parent.parent / 'phantora'}{os.sep}",
    "<frozen ",
    "functools.py",
    "contextlib.py",
    "typing_extensions.py",
)


def user_call_site() -> str:
    """``file:line`` of the innermost frame outside torch/interpose/phantora (the user's code)."""
    f: FrameType | None = sys._getframe(1)
    fallback = ""
    while f is not None:
        name = f.f_code.co_filename
        if not fallback:
            fallback = f"{name}:{f.f_lineno}"
        if not any(name.startswith(p) or p in name for p in _SKIP_PARTS):
            return f"{name}:{f.f_lineno}"
        f = f.f_back
    return f"<no user frame; innermost {fallback}>"


def flat_tensors(obj: object) -> list[torch.Tensor]:
    """All tensors in a tensor / list / list of lists."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        out: list[torch.Tensor] = []
        for x in obj:
            out.extend(flat_tensors(x))
        return out
    return []


def nbytes_of(obj: object) -> int:
    return sum(t.numel() * t.element_size() for t in flat_tensors(obj))


def dtype_of(obj: object) -> str:
    ts = flat_tensors(obj)
    return str(ts[0].dtype).removeprefix("torch.") if ts else ""


def reduce_op_name(opts: object) -> str:
    op = getattr(opts, "reduceOp", None)
    if op is None:
        return ""
    return str(getattr(op, "op", op)).split(".")[-1].lower()
