"""Undoable attribute patches: every replacement the shim makes goes through one Patcher."""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_MISSING = object()


class Patcher:
    """Sets attributes and remembers the originals so :meth:`restore` undoes them in reverse.

    The original is read from the object's own ``__dict__``, so a patch of an
    inherited attribute (``Tensor.pin_memory`` lives on ``TensorBase``) is undone
    by deleting the override rather than copying the base's value down.

    :meth:`after_import` patches a module the script may import later (third-party
    libraries are not imported by the shim itself).
    """

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []
        self._finder: _PostImportFinder | None = None

    def set(self, obj: Any, name: str, value: Any) -> None:
        own = getattr(obj, "__dict__", None)
        old = own.get(name, _MISSING) if own is not None else getattr(obj, name, _MISSING)
        if old is _MISSING and not isinstance(obj, type) and hasattr(type(obj), "__getattr__"):
            # an attribute served by __getattr__ (torch's config modules and their sub-configs keep
            # their entries outside __dict__): restore the value; deleting it deletes the entry itself
            old = getattr(obj, name, _MISSING)
        self._saved.append((obj, name, old))
        setattr(obj, name, value)

    def after_import(self, module: str, fn: Callable[[ModuleType], None]) -> None:
        """Call ``fn(mod)`` once module ``module`` is imported: now if it already is, else right
        after it first executes (the script's ``import`` returns the patched module). ``fn``
        patches through :meth:`set`, so :meth:`restore` undoes it; the import hook goes too."""
        mod = sys.modules.get(module)
        if mod is not None:
            fn(mod)
            return
        if self._finder is None:
            self._finder = _PostImportFinder()
            sys.meta_path.insert(0, self._finder)
        self._finder.hooks.setdefault(module, []).append(fn)

    def restore(self) -> None:
        if self._finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self._finder)
            self._finder = None
        while self._saved:
            obj, name, old = self._saved.pop()
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: for a hooked module name, finds the spec with the finders after
    it and wraps the loader's ``exec_module`` so the hooks run once the module body has run."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Callable[[ModuleType], None]]] = {}

    def find_spec(self, fullname, path, target=None):
        fns = self.hooks.get(fullname)
        if not fns:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec  # a namespace package or a class-level loader (builtins): not hooked
        del self.hooks[fullname]
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            with contextlib.suppress(AttributeError):
                del loader.exec_module  # the loader's own method again
            run(module)
            for fn in fns:
                fn(module)

        loader.exec_module = exec_module
        return spec
