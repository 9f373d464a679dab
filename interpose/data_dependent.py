"""Ops whose answer depends on GPU data: ``.item()``, ``torch.equal``, ``nonzero``, ``masked_select``.

Known values (:mod:`interpose.values`) give the real answer. Unknown ones read as placeholders
(0, 0.0, False; True for the result of ``all()``, False for ``any()``), and a data-dependent size
from unknown data is the upper bound (every element selected). Every read is a host-device sync.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch._subclasses.fake_tensor import FakeTensor

from interpose.host_copies import copy_kernel
from interpose.op_args import dtype_text
from profiles.compute import signature_of

if TYPE_CHECKING:
    from interpose.dispatch import Handler, SimDispatchMode

aten = torch.ops.aten

BENIGN_ATTR = "_phantora_benign_value"
"""Attribute on a fake ``all``/``any`` result: the value ``.item()``/``bool()`` returns."""


def placeholder(dtype: torch.dtype) -> bool | int | float | complex:
    """What an unknown scalar of ``dtype`` reads as on the host."""
    if dtype == torch.bool:
        return False
    if dtype.is_complex:
        return 0j
    if dtype.is_floating_point:
        return 0.0
    return 0


def _item(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    copy_kernel(mode, "aten._local_scalar_dense.default(d2h)", x.element_size(), "", dtype_text(x), True,
                signature_of(func, args, kwargs), direction="d2h")
    real = mode.values.get(x)
    if real is not None:
        return real.item()
    v = getattr(x, BENIGN_ATTR, None)
    return placeholder(x.dtype) if v is None else v


def _benign(mode: SimDispatchMode, value: bool, func: Any, args: tuple, kwargs: dict) -> Any:
    """``all`` reads True and ``any`` False when the host asks for the value: the
    answer that says "nothing unusual" to checks scripts make (``isfinite(x).all()``,
    ``isnan(x).any()``, Hugging Face's all-ones padding-mask test that lets SDPA run
    causal without a mask). Other reductions read as 0 / False."""
    out = mode.simulate(func, args, kwargs)
    if isinstance(out, FakeTensor):
        setattr(out, BENIGN_ATTR, value)
    return out


def _equal(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> bool:
    mode.rt.sync_stream()
    a, b = mode.values.get(args[0]), mode.values.get(args[1])
    return True if a is None or b is None else torch.equal(a, b)


def _selected(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict, shape: list[int],
              dtype: torch.dtype, device: torch.device) -> Any:
    mode.rt.sync_stream()  # the output size is data-dependent: a real GPU syncs here too
    with mode.fake:
        out = aten.empty.memory_format(shape, dtype=dtype, device=device)
    mode.account(func, args, kwargs, out)
    return out


def _known_selected(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict, out: Any) -> Any:
    mode.rt.sync_stream()
    mode.account(func, args, kwargs, out)
    return out


def _nonzero(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    out = mode.values.dynamic(mode.fake, func, args, kwargs)
    if out is not None:
        return _known_selected(mode, func, args, kwargs, out)
    return _selected(mode, func, args, kwargs, [x.numel(), x.dim()], torch.long, x.device)


def _masked_select(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    x, mask = args[0], args[1]
    out = mode.values.dynamic(mode.fake, func, args, kwargs)
    if out is not None:
        return _known_selected(mode, func, args, kwargs, out)
    n = torch.broadcast_shapes(x.shape, mask.shape).numel()
    return _selected(mode, func, args, kwargs, [n], x.dtype, x.device)


def handlers(mode: SimDispatchMode) -> dict[Any, Handler]:
    """The data-dependent ops' entries in the mode's special-op table."""
    table: dict[Any, Handler] = {
        aten._local_scalar_dense.default: partial(_item, mode),
        aten.equal.default: partial(_equal, mode),
        aten.nonzero.default: partial(_nonzero, mode),
        aten.masked_select.default: partial(_masked_select, mode),
    }
    for packet, value in ((aten.all, True), (aten.any, False)):
        for name in ("default", "dim", "dims"):
            table[getattr(packet, name)] = partial(_benign, mode, value)
    return table
