"""Undoable attribute patches: every replacement the shim makes goes through one Patcher."""

from __future__ import annotations

import contextlib
from typing import Any

_MISSING = object()


class Patcher:
    """Sets attributes and remembers the originals so :meth:`restore` undoes them in reverse.

    The original is read from the object's own ``__dict__``, so a patch of an
    inherited attribute (``Tensor.pin_memory`` lives on ``TensorBase``) is undone
    by deleting the override rather than copying the base's value down.
    """

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def set(self, obj: Any, name: str, value: Any) -> None:
        own = getattr(obj, "__dict__", None)
        old = own.get(name, _MISSING) if own is not None else getattr(obj, name, _MISSING)
        self._saved.append((obj, name, old))
        setattr(obj, name, value)

    def restore(self) -> None:
        while self._saved:
            obj, name, old = self._saved.pop()
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)
