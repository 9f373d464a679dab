"""One registry type for every family of pluggable variants.

Transports, collective algorithms, topologies, network backends (netsim), compute-time
models and GPUs (profiles) each keep one :class:`Registry`. It lives in the neutral
``common`` package so no layer imports another just for the type.

Unlike registries that silently overwrite, ``register`` refuses a duplicate key
and ``get`` names the valid keys when asked for an unknown one, so a typo in a
scenario file becomes one clear error line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownVariantError(KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named map from variant names to implementations (classes or factories).

    >>> transports: Registry[type] = Registry("transport")
    >>> @transports.register("ideal")
    ... class Ideal: ...
    >>> transports.get("ideal") is Ideal
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name``; a second use of a name raises."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownVariantError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
