"""Inductor's extern kernels (``extern_kernels.mm(a, b, out=buf)``) are ``out=`` overloads of aten
ops writing into a planned buffer. The kernel is the functional op's: time them as that op (the
profiles record ``aten.mm.default``, not ``aten.mm.out``)."""

from __future__ import annotations

from typing import Any

_functional: dict[Any, Any] = {}


def functional_form(func: Any, kwargs: dict) -> tuple[Any, dict] | None:
    """``(aten.mm.default, kwargs without out)`` for ``aten.mm.out``; ``None`` for other ops or an
    ``out=`` overload without a functional twin of the same arguments."""
    if func._overloadname != "out" or "out" not in kwargs:
        return None
    f = _functional.get(func, False)
    if f is False:
        f = getattr(func.overloadpacket, "default", None)
        names = [a.name for a in func._schema.arguments if not a.is_out]
        if f is not None and [a.name for a in f._schema.arguments] != names:
            f = None
        _functional[func] = f
    if f is None:
        return None
    return f, {k: v for k, v in kwargs.items() if k != "out"}
