"""``torch.save`` / ``torch.load`` under the shim: checkpoints of simulated-GPU tensors, and real files whose
storages belong on a GPU.

A fake tensor has no data. ``torch.save`` stores one as a record of its layout (dtype, shape, stride,
offset, device, ``requires_grad``) that :func:`rebuild_fake` turns back into a fake tensor when the same
simulation, or a later one, loads the file (a script resuming from its own checkpoint); loading it anywhere
else raises a one-line error, since the values never existed. Saving costs what the real ``torch.save``
pays on the GPU side: a blocking device-to-host copy of every fake storage it writes (the file write
itself, which depends on the target's storage, is not simulated).

A storage that ``torch.load`` restores to a cuda location (a checkpoint written on a GPU, or
``map_location="cuda"``) cannot be made on a CPU build, which raised "Storage device not recognized";
here it stays a CPU storage while the file is read, and each tensor built on it moves to the simulated GPU
as ``tensor.to(device)`` would (a host-to-device copy; known values per the value policy). Tensors that
were views of one storage arrive as separate copies.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor

from interpose.patching import Patcher

_saving: list[dict[int, int]] = []
"""Per ``torch.save`` call in progress: bytes of each fake storage written, by storage id."""
_loading: list[tuple[Any, dict[int, str]]] = []
"""Per ``torch.load`` call in progress: its ``map_location`` and the CPU storages bound for a GPU."""


def _active_mode() -> Any:
    from interpose import runner

    state = runner._state
    return None if state is None else state.mode


def rebuild_fake(dtype: torch.dtype, size: tuple[int, ...], stride: tuple[int, ...], offset: int,
                 requires_grad: bool, device: str) -> torch.Tensor:
    """A tensor saved from a simulated GPU: fake again (zeros on the CPU, where ``map_location`` says so)."""
    mode = _active_mode()
    if mode is None:
        raise RuntimeError("this checkpoint was written by a phantora simulation: its GPU tensors hold no data "
                           "(load it under `phantora run`)")
    target = _target(device)
    extent = 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else 0
    with torch.no_grad():
        base = torch.zeros(offset + extent, dtype=dtype, device=target)
        t = base.as_strided(size, stride, offset)
    if t.device.type == "cuda":
        from interpose.host_copies import copy_kernel

        copy_kernel(mode, "torch.load(h2d)", (offset + extent) * t.element_size(), "x".join(map(str, size)),
                    str(dtype).removeprefix("torch."), True, direction="h2d")
    return t.requires_grad_(requires_grad) if requires_grad else t


def _target(saved: str) -> str:
    """Where the active ``torch.load``'s ``map_location`` sends a tensor saved on ``saved``."""
    ml = _loading[-1][0] if _loading else None
    if ml is None or callable(ml):
        return saved
    if isinstance(ml, dict):
        return str(ml.get(saved, saved))
    return str(ml)


def _reduce_fake(orig):
    def __reduce_ex__(self, proto):
        if not _saving or not isinstance(self, FakeTensor) or _active_mode() is None:
            return orig(self, proto)
        st = self.untyped_storage()
        _saving[-1][st._cdata] = st.nbytes()
        return (rebuild_fake, (self.dtype, tuple(self.shape), tuple(self.stride()), int(self.storage_offset()),
                               bool(self.requires_grad), str(self.device)))

    return __reduce_ex__


def _make_save(orig):
    @functools.wraps(orig)
    def save(obj, f, *args, **kwargs):
        _saving.append({})
        try:
            out = orig(obj, f, *args, **kwargs)
        finally:
            written = sum(_saving.pop().values())
        mode = _active_mode()
        if written and mode is not None:
            from interpose.host_copies import copy_kernel

            copy_kernel(mode, "torch.save(d2h)", written, f"{written}B", "", True, direction="d2h")
        return out

    return save


def _make_load(orig):
    @functools.wraps(orig)
    def load(f, map_location=None, *args, **kwargs):
        _loading.append((map_location, {}))
        try:
            with torch.serialization.safe_globals([rebuild_fake]):
                return orig(f, map_location, *args, **kwargs)
        finally:
            _loading.pop()

    return load


def _make_restore(orig):
    @functools.wraps(orig)
    def default_restore_location(storage, location):
        if _loading and _active_mode() is not None and str(location).startswith("cuda"):
            _loading[-1][1][storage._cdata] = str(location)  # built tensors move there (below)
            return storage
        return orig(storage, location)

    return default_restore_location


def _make_rebuild(orig):
    @functools.wraps(orig)  # pickled by name: torch.save of a CPU tensor names torch._utils._rebuild_tensor_v2
    def _rebuild_tensor_v2(storage, *args, **kwargs):
        t = orig(storage, *args, **kwargs)
        device = _loading[-1][1].get(t.untyped_storage()._cdata) if _loading else None
        if device is None:
            return t
        with torch.no_grad():
            out = t.to(device)
        return out.requires_grad_(t.requires_grad) if t.requires_grad else out

    return _rebuild_tensor_v2


def install_checkpoints(p: Patcher) -> None:
    """Patch save/load (undone by the patcher); the weights-only unpickler's allowed globals are cached
    with the functions they name, so the cache is cleared on both sides of the patch."""
    from torch import _weights_only_unpickler

    p.set(FakeTensor, "__reduce_ex__", _reduce_fake(torch.Tensor.__reduce_ex__))
    save = _make_save(torch.save)
    p.set(torch, "save", save)
    p.set(torch.serialization, "save", save)
    load = _make_load(torch.load)
    p.set(torch, "load", load)
    p.set(torch.serialization, "load", load)
    p.set(torch.serialization, "default_restore_location", _make_restore(torch.serialization.default_restore_location))
    p.set(torch._utils, "_rebuild_tensor_v2", _make_rebuild(torch._utils._rebuild_tensor_v2))
    with contextlib.suppress(AttributeError):
        _weights_only_unpickler._get_allowed_globals.cache_clear()
