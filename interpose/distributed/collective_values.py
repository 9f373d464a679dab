"""What collectives do to *real* (non-fake) or known data.

Small known data of an all-reduce, an all-gather or a broadcast travels through the coordinator, so
each member gets the real combination of every member's values (:func:`member_data`,
:func:`relayable`). Otherwise, and in functional collectives, every rank is assumed to hold the same
values (the program is SPMD and its ranks are symmetric).

Fake tensors carry no data, so collectives on them only take time. But scripts also run
small real CPU collectives, and collectives on simulated-GPU tensors whose values are known
(:mod:`interpose.values`: token counts, MoE split sizes, flags), whose *values* steer control
flow (DDP checks that every rank has the same parameter shapes; loss/token counts get summed;
expert-parallel all-to-alls exchange per-expert counts). Pretending all ranks agree gives those
helpers the answer they expect: an all_gather returns copies of my input, a SUM all_reduce
multiplies by the group size, an all-to-all gives every member the block addressed to it by each
member, which is its own block (every member holds the same tensor), repeated once per member.
A known destination written from unknown data becomes unknown; an unknown destination that a
collective overwrites whole (the output a functional collective allocates) becomes known when the
data written into it is.
"""

from __future__ import annotations

from typing import Any

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


RELAY_MAX_BYTES = 1 << 16
"""Known data up to this size that a broadcast carries travels through the coordinator (below)."""


def relayable(tensors: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """The data behind ``tensors`` if all of it is known, small and integer or boolean: a broadcast of it
    carries the root's values, which may differ from this rank's (DeepSpeed checks that ranks agree by
    broadcasting rank 0's list length into a tensor the others filled with -1); ``None`` otherwise.
    Floating-point data (module states DDP and FSDP broadcast at start) keeps the symmetric-ranks rule:
    relaying it would make the other members wait on the host for values nothing branches on."""
    if any(t.is_floating_point() or t.is_complex() for t in tensors):
        return None
    if sum(t.numel() * t.element_size() for t in tensors) > RELAY_MAX_BYTES:
        return None
    out = [data(t) for t in tensors]
    return None if any(d is None for d in out) else out  # type: ignore[return-value]


def member_data(tensors: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """The data behind ``tensors`` that an all-reduce or all-gather carries to the other members through
    the coordinator, so every member combines the real values of all (ranks count different tokens,
    hold different flags; a gloo group sums CPU values): known data and real CPU tensors, up to
    :data:`RELAY_MAX_BYTES`. ``None``: the symmetric-ranks rule of the module docstring."""
    if not tensors or sum(t.numel() * t.element_size() for t in tensors) > RELAY_MAX_BYTES:
        return None
    out = [data(t) for t in tensors]
    return None if any(d is None for d in out) else out  # type: ignore[return-value]


_REDUCE = {
    "sum": lambda v: torch.stack(v).sum(0), "product": lambda v: torch.stack(v).prod(0),
    "min": lambda v: torch.stack(v).amin(0), "max": lambda v: torch.stack(v).amax(0),
    "avg": lambda v: torch.stack(v).sum(0) / len(v),
    "band": lambda v: _fold(v, torch.bitwise_and), "bor": lambda v: _fold(v, torch.bitwise_or),
    "bxor": lambda v: _fold(v, torch.bitwise_xor),
}  # fmt: skip


def _fold(vals: list[torch.Tensor], f) -> torch.Tensor:
    acc = vals[0]
    for v in vals[1:]:
        acc = f(acc, v)
    return acc


def _members(payloads: tuple[bytes | None, ...], op: str) -> tuple[Any, list[list[torch.Tensor]]] | None:
    """The reduction for ``op`` and every member's :func:`pack`ed values; ``None`` where a member sent none
    (its data unknown) or ``op`` is not modelled."""
    import pickle

    reduce = _REDUCE.get(op or "sum")
    if reduce is None or not payloads or any(p is None for p in payloads):
        return None
    return reduce, [pickle.loads(p) for p in payloads]  # type: ignore[arg-type]


def _reduce_values(reduce: Any, vals: list[torch.Tensor], op: str, dtype: torch.dtype) -> torch.Tensor:
    """``reduce`` over the members' values, in ``dtype`` (a bool sum counts, then reads back as a flag)."""
    r = reduce([v.to(torch.int64) if v.dtype == torch.bool and op in ("sum", "avg") else v for v in vals])
    return r.to(dtype) if dtype != torch.bool else r.bool()


def reduce_members(known: list[torch.Tensor], payloads: tuple[bytes | None, ...], op: str,
                   outputs: list[torch.Tensor]) -> None:
    """An all-reduce of every member's :func:`member_data`: the reduction is written into ``known``; a member
    that sent none (its data unknown) or an op not modelled leaves ``outputs`` unknown."""
    with _disable_current_modes():
        got = _members(payloads, op)
        if got is None:
            for o in outputs:
                _forget(o)
            return
        reduce, members = got
        for i, d in enumerate(known):
            vals = [m[i] for m in members]
            if any(v.shape != d.shape for v in vals):
                _forget(outputs[i])
                continue
            d.copy_(_reduce_values(reduce, vals, op, d.dtype))


def reduce_scatter_members(out: torch.Tensor, payloads: tuple[bytes | None, ...], my: int, op: str, n: int) -> None:
    """A reduce-scatter of every member's :func:`member_data` (one input each): ``out`` gets chunk ``my``
    (dim 0) of their reduction; a member that sent none, unequal shapes or an op not modelled leave it unknown."""
    with _disable_current_modes():
        got = _members(payloads, op)
        vals = [m[0] for m in got[1]] if got is not None else []
        if got is None or any(v.shape != vals[0].shape for v in vals) or not vals[0].dim() or vals[0].shape[0] % n:
            _forget(out)
            return
        _copy(out, _reduce_values(got[0], vals, op, vals[0].dtype).chunk(n)[my])


def gather_members(outs: list[torch.Tensor], payloads: tuple[bytes | None, ...]) -> None:
    """An all-gather of every member's :func:`member_data` (one tensor each): output ``j`` is member ``j``'s."""
    import pickle

    with _disable_current_modes():
        if len(payloads) != len(outs) or any(p is None for p in payloads):
            for o in outs:
                _forget(o)
            return
        for o, p in zip(outs, payloads, strict=True):
            _copy(o, pickle.loads(p)[0])  # type: ignore[arg-type]


def pack(known: list[torch.Tensor]) -> bytes:
    import pickle

    with _disable_current_modes():
        return pickle.dumps([d.detach().clone() for d in known])


def unpack_into(known: list[torch.Tensor], payload: bytes) -> None:
    """Write the root's values (:func:`pack`) into this rank's known data."""
    import pickle

    with _disable_current_modes():
        for d, v in zip(known, pickle.loads(payload), strict=True):
            d.copy_(v)


def all_reduce(tensors: list[torch.Tensor], op: str, n: int) -> None:
    with _disable_current_modes():
        for t in tensors:
            d = data(t)
            if d is not None:
                _scale(d, op, n)


def _adopt(out: torch.Tensor, src: torch.Tensor | None) -> torch.Tensor | None:
    """``data(out)``; an unknown fake ``out`` that covers its whole storage (so the collective replaces
    every byte of it) first gets a shadow when ``src`` (the data written into it) is known."""
    d = data(out)
    if d is not None or src is None or not is_fake(out):
        return d
    from interpose.runtime import _current

    whole = out.numel() * out.element_size() == out.untyped_storage().nbytes()
    if _current is None or not whole or torch._debug_has_internal_overlap(out) == 1:
        return None
    return _known_view(out) if _current.values.put(out) else None


def adopt(out: torch.Tensor, inp: torch.Tensor) -> None:
    """Make ``out`` known before a collective writes all of it from ``inp``, if ``inp`` is known
    (all-gather into one tensor, whose chunks are then written one by one)."""
    with _disable_current_modes():
        _adopt(out, data(inp))


def _copy(out: torch.Tensor, src: torch.Tensor | None) -> torch.Tensor | None:
    d = _adopt(out, src)
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


def _even(rows: int, n: int) -> list[int] | None:
    return [rows // n] * n if n > 0 and rows % n == 0 else None


def all_to_all_single(out: torch.Tensor, inp: torch.Tensor, out_splits, in_splits, my: int, n: int) -> None:
    """``all_to_all_single`` on dim 0: member ``j`` sends rows ``in_splits[j]`` of its input to ``j``.
    Every member holds my input, so I receive my own block ``in_splits[my]`` from each of ``n``
    members; output splits that disagree with that (or unknown input) leave ``out`` unknown."""
    with _disable_current_modes():
        src = data(inp)
        block = None
        if src is not None and inp.dim() > 0 and out.dim() == inp.dim() and out.shape[1:] == inp.shape[1:]:
            rows_in = [int(s) for s in in_splits] if len(in_splits) else _even(inp.shape[0], n)
            rows_out = [int(s) for s in out_splits] if len(out_splits) else _even(out.shape[0], n)
            if (rows_in is not None and rows_out is not None and len(rows_in) == n == len(rows_out)
                    and sum(rows_in) == inp.shape[0] and all(r == rows_in[my] for r in rows_out)):
                start = sum(rows_in[:my])
                block = src[start:start + rows_in[my]]
        if block is None:
            _forget(out)
            return
        d = _adopt(out, src)
        if d is not None:
            d.copy_(torch.cat([block] * n).reshape(d.shape))


def all_to_all(outputs: list[torch.Tensor], inputs: list[torch.Tensor], my: int) -> None:
    """List ``all_to_all``: output ``j`` is member ``j``'s input ``my``, i.e. my own input ``my``."""
    with _disable_current_modes():
        src = data(inputs[my]) if my < len(inputs) else None
        for o in outputs:
            _copy(o, src)


def functional_result(out: torch.Tensor, inp: torch.Tensor, op: str = "", n: int = 1) -> None:
    """A functional collective that cloned ``inp`` into ``out`` before reducing it in place (all-reduce,
    broadcast): the clone is made below the shim, so ``out`` learns ``inp``'s value here, reduced over
    ``n`` symmetric members with ``op`` (empty: a broadcast)."""
    with _disable_current_modes():
        if data(out) is not None or not is_fake(out):
            return
        src = data(inp)
        d = _adopt(out, src)
        if d is not None and src is not None:
            d.copy_(src.reshape(d.shape))
            _scale(d, op, n)
