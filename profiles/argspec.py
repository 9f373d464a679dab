"""A call's arguments as JSON, and random inputs rebuilt from it.

A simulated run writes one :func:`call_spec` line per signature it had no
measurement for (the "missing signatures" file); ``phantora profile
--kernels-only`` reads the lines back, makes inputs of the same shapes, strides
and dtypes with :func:`materialize`, and times the op on a real GPU.

Values: floating tensors are filled with N(0, 1); integer tensors with zeros
(always a valid index, for embedding, gather, nll_loss targets); bool tensors
at random. Kernel time rarely depends on values; index patterns that matter
(e.g. highly skewed embedding lookups) are the known exception, and some
integer arguments are not indices but sizes (``_grouped_mm``'s ``offs``, the
cumulative group ends: zeros there make every group empty). A tensor spec may
carry its contents as ``"values"`` (a flat list, written by sweep specs), which
:func:`decode` then uses instead.
"""

from __future__ import annotations

from typing import Any

import torch

from profiles.compute import signature_of


class UnreplayableError(ValueError):
    """The call has an argument that cannot be rebuilt from its spec."""


def encode(x: Any) -> Any:
    """JSON value for one argument."""
    if isinstance(x, torch.Tensor):
        return {
            "T": list(x.shape),
            "stride": list(x.stride()),
            "dtype": str(x.dtype).removeprefix("torch."),
            "device": x.device.type,
        }
    if isinstance(x, list | tuple):
        return {"L": [encode(v) for v in x]}
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, torch.dtype):
        return {"dtype": str(x).removeprefix("torch.")}
    if isinstance(x, torch.memory_format):
        return {"memory_format": str(x).removeprefix("torch.")}
    if isinstance(x, torch.layout):
        return {"layout": str(x).removeprefix("torch.")}
    if isinstance(x, torch.device):
        return {"device": x.type}
    return {"unsupported": type(x).__name__}


def call_spec(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Everything needed to re-run the call with random inputs, plus its signature key."""
    return {
        "key": signature_of(func, args, kwargs).key(),
        "op": str(func),
        "args": [encode(a) for a in args],
        "kwargs": {k: encode(v) for k, v in kwargs.items()},
    }


def resolve_op(name: str) -> torch._ops.OpOverload:
    """``aten.mm.default`` -> ``torch.ops.aten.mm.default``."""
    ns, packet, overload = name.split(".")
    try:
        return getattr(getattr(getattr(torch.ops, ns), packet), overload)
    except (AttributeError, RuntimeError):
        raise UnreplayableError(f"unknown op {name!r} in this torch build") from None


def decode(v: Any, device: str) -> Any:
    """Rebuild one argument; tensors get random contents on ``device`` (their recorded device if cpu)."""
    if isinstance(v, list):  # plain JSON list (not produced by encode, tolerated)
        return [decode(x, device) for x in v]
    if not isinstance(v, dict):
        return v
    if "T" in v:
        dtype = getattr(torch, v["dtype"])
        dev = "cpu" if v.get("device") == "cpu" else device
        t = torch.empty_strided(v["T"], v["stride"], dtype=dtype, device=dev)
        if "values" in v:
            vals = torch.tensor(v["values"], dtype=dtype)
            if vals.numel() != t.numel():
                raise UnreplayableError(f"{len(v['values'])} values for a tensor of shape {v['T']}")
            t.copy_(vals.reshape(t.shape))
        elif dtype.is_floating_point or dtype.is_complex:
            t.normal_()
        elif dtype == torch.bool:
            t.random_(0, 2)
        else:
            t.zero_()
        return t
    if "L" in v:
        return [decode(x, device) for x in v["L"]]
    if "dtype" in v:
        return getattr(torch, v["dtype"])
    if "memory_format" in v:
        return getattr(torch, v["memory_format"])
    if "layout" in v:
        return getattr(torch, v["layout"])
    if "device" in v:
        return torch.device(device if v["device"] != "cpu" else "cpu")
    raise UnreplayableError(f"argument of type {v.get('unsupported', '?')} cannot be rebuilt")


def materialize(spec: dict[str, Any], device: str) -> tuple[torch._ops.OpOverload, tuple, dict]:
    """The op and freshly made random arguments for one :func:`call_spec` line."""
    func = resolve_op(spec["op"])
    args = tuple(decode(a, device) for a in spec.get("args", []))
    kwargs = {k: decode(v, device) for k, v in spec.get("kwargs", {}).items()}
    return func, args, kwargs
