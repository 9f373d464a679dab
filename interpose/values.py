"""Known values on the simulated GPU, so data-dependent control flow follows the program's own logic.

A fake tensor has no data. But much of what a program puts on the GPU *is* known on the host:
token ids and masks copied from CPU tensors, ``torch.full``/``arange``/``randint`` results, and
everything computed only from such tensors (positions, routing counts, split sizes, stopping
flags). For those, :class:`KnownValues` keeps a **shadow**: a real CPU storage beside the fake
storage, holding the bytes the GPU would hold. Ops whose fake inputs all have shadows run again on
the shadows (on the CPU) and their outputs get shadows too; views and in-place ops see the same
storage, so aliasing is exact. ``.item()``, ``bool()``, ``.tolist()``, D2H copies, ``nonzero``,
boolean indexing, ``unique``, ``bincount`` ... then give the real answer and the real shape.

What is *not* known, on purpose: floating-point data moved from the host or made by factories
(weights, activations, images) beyond :attr:`ValuePolicy.small_float_numel` elements, so the
simulator never does the model's arithmetic; anything computed from a fake (unknown) tensor;
storages over :attr:`ValuePolicy.cap_bytes`. Those read as placeholders, as before.

Index-producing ops and NaN/inf checks on unknown floats take their answer from the value policy
(:mod:`interpose.value_policy`, re-exported here).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import _disable_current_modes

from interpose.value_policy import FINITE_OPS, INDEX_OPS, POLICIES, IndexSource, ValuePolicy

__all__ = ["POLICIES", "IndexSource", "KnownValues", "ValuePolicy"]

_real_only = torch._C._DisableTorchDispatch
"""Runs CPU ops on the shadows past every dispatch mode (the shim's, FakeTensorMode): a C++ guard,
where popping and restoring the mode stack (``_disable_current_modes``) costs microseconds per op."""

aten = torch.ops.aten

_LIKE_FACTORIES = {aten.zeros_like.default, aten.ones_like.default, aten.full_like.default,
                   aten.new_zeros.default, aten.new_ones.default, aten.new_full.default}
"""Factories shaped like a tensor: their values never depend on that tensor's (maybe unknown) data."""

_OVERWRITE = {aten.copy_.default, aten.fill_.Scalar, aten.fill_.Tensor, aten.zero_.default}
"""In-place ops that replace every element of their destination (which may be unknown before)."""


_LIKE, _OVER, _WRITES, _POLICY = 1, 2, 4, 8
""":meth:`KnownValues.propagate`'s per-op flags: a like-factory, an overwrite, writes an argument,
answered by the value policy."""


def _write_positions(func) -> tuple[int | str, ...]:
    """Positions (or kwarg names) of the arguments ``func`` mutates."""
    out: list[int | str] = []
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            out.append(a.name if a.kwarg_only else i)
    return tuple(out)


def _flat(x: Any):
    if isinstance(x, torch.Tensor):
        yield x
    elif type(x) in (list, tuple):
        for y in x:
            if isinstance(y, torch.Tensor):
                yield y


class KnownValues:
    """Shadow storages of one rank (see module docstring)."""

    def __init__(self, policy: ValuePolicy | None = None) -> None:
        self.policy = policy or ValuePolicy()
        self.indices = IndexSource(self.policy)
        self._shadow: dict[int, torch.UntypedStorage] = {}
        self._writes: dict[Any, tuple[int | str, ...]] = {}
        self._kinds: dict[int, tuple[Any, int]] = {}
        self._rng_state: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self._shadow)

    # -- storages -------------------------------------------------------------------
    def get(self, t: torch.Tensor) -> torch.Tensor | None:
        """The real CPU view of fake ``t``'s data, aliasing its shadow storage, or ``None``."""
        if not isinstance(t, FakeTensor):
            return None
        s = self._shadow.get(t.untyped_storage()._cdata)
        return None if s is None else _view(t, s)

    def known(self, t: Any) -> bool:
        return isinstance(t, FakeTensor) and t.untyped_storage()._cdata in self._shadow

    def keepable(self, t: torch.Tensor, from_host: bool) -> bool:
        if t.untyped_storage().nbytes() > self.policy.cap_bytes:
            return False
        if from_host and (t.dtype.is_floating_point or t.dtype.is_complex):
            return t.numel() <= self.policy.small_float_numel
        return True

    def put(self, fake: torch.Tensor, real: torch.Tensor | None = None, from_host: bool = False) -> bool:
        """Give ``fake``'s storage a shadow holding ``real`` (uninitialised where ``real`` is None)."""
        if not isinstance(fake, FakeTensor) or not self.keepable(fake, from_host):
            return False
        st = fake.untyped_storage()
        key = st._cdata
        created = key not in self._shadow
        if created:
            self._shadow[key] = torch.UntypedStorage(st.nbytes())
            weakref.finalize(st, self._shadow.pop, key, None)
        if real is not None:
            view = _view(fake, self._shadow[key])
            with torch.no_grad(), _real_only():
                real = real.reshape(view.shape) if real.shape != view.shape else real
                if torch._debug_has_internal_overlap(view) == 1:
                    # an expanded layout (stride 0, ``empty_strided`` of an expand): its elements share
                    # memory, so write one slice along each broadcast dim
                    idx = tuple(slice(0, 1) if s == 0 else slice(None) for s in view.stride())
                    view, real = view[idx], real[idx]
                try:
                    view.copy_(real)
                except RuntimeError:  # still self-overlapping: no well-defined contents to keep
                    if created:
                        self._shadow.pop(key, None)
                    return False
        return True

    def drop(self, t: Any) -> None:
        for x in _flat(t):
            if isinstance(x, FakeTensor):
                self._shadow.pop(x.untyped_storage()._cdata, None)

    # -- ops ------------------------------------------------------------------------
    def _real_args(self, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """``args``/``kwargs`` with every fake tensor replaced by its shadow view, or ``None`` if any
        fake tensor is unknown."""

        def conv(a: Any) -> Any:
            if isinstance(a, FakeTensor):
                v = self.get(a)
                if v is None:
                    raise LookupError
                return v
            if type(a) in (list, tuple) and any(isinstance(y, FakeTensor) for y in a):
                return type(a)(conv(y) for y in a)
            return a

        try:
            rargs = tuple(conv(a) for a in args)
            rkw = {k: conv(v) for k, v in kwargs.items()}
        except LookupError:
            return None
        if "device" in rkw and rkw["device"] is not None:
            rkw["device"] = "cpu"
        rkw.pop("pin_memory", None)
        return rargs, rkw

    def _run_real(self, func, rargs: tuple, rkw: dict) -> Any:
        """Run ``func`` on CPU data; random ops draw from the simulated GPU's own generator state,
        so the script's CPU random stream is untouched."""
        if torch.Tag.nondeterministic_seeded not in func.tags:
            return func(*rargs, **rkw)
        saved = torch.get_rng_state()
        try:
            if self._rng_state is None:
                torch.manual_seed(self.policy.seed)
            else:
                torch.set_rng_state(self._rng_state)
            out = func(*rargs, **rkw)
            self._rng_state = torch.get_rng_state()
            return out
        finally:
            torch.set_rng_state(saved)

    def _kind_of(self, func) -> tuple[Any, int]:
        """What :meth:`propagate` does for ``func`` (flags), found once per op and kept by ``id``: an op
        overload's ``__hash__`` is Python, and this runs for every simulated op (the op is kept in the
        entry, so its id is never reused)."""
        flags = ((_LIKE if func in _LIKE_FACTORIES else 0) | (_OVER if func in _OVERWRITE else 0)
                 | (_WRITES if self.writes(func) else 0)
                 | (_POLICY if func in INDEX_OPS or func in FINITE_OPS else 0))
        kind = self._kinds[id(func)] = (func, flags)
        return kind

    def writes(self, func) -> tuple[int | str, ...]:
        w = self._writes.get(func)
        if w is None:
            w = self._writes[func] = _write_positions(func)
        return w

    def _written(self, func, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        pos = self.writes(func)
        out = []
        for p in pos:
            a = kwargs.get(p) if isinstance(p, str) else (args[p] if p < len(args) else None)
            out.extend(_flat(a))
        return out

    def real_outputs(self, func, args: tuple, kwargs: dict) -> Any:
        """Compute ``func`` on the shadows if every fake input is known (else ``None``); an op the
        CPU cannot run leaves everything unknown."""
        if not self._shadow and any(isinstance(a, FakeTensor) for a in args):
            return None
        ra = self._real_args(args, kwargs)
        if ra is None:
            return None
        try:
            return self._run_real(func, *ra)
        except Exception:
            return None

    def _scan(self, args: tuple, kwargs: dict) -> int:
        """``-1``: no fake tensor among the inputs (a factory); ``1``: every fake input is known;
        ``0``: some fake input is unknown (the common case: it returns at the first one)."""
        sh = self._shadow
        seen = False
        for group in (args, kwargs.values()):
            for a in group:
                if isinstance(a, FakeTensor):
                    if a.untyped_storage()._cdata not in sh:
                        return 0
                    seen = True
                elif type(a) in (list, tuple):
                    for y in a:
                        if isinstance(y, FakeTensor):
                            if y.untyped_storage()._cdata not in sh:
                                return 0
                            seen = True
        return 1 if seen else -1

    def propagate(self, func, args: tuple, kwargs: dict, out: Any) -> None:
        """After fake ``out = func(*args, **kwargs)``: keep shadows true (module docstring). Runs for
        every simulated op, so the path for ops on unknown data is a scan that stops at the first
        unknown input."""
        kind = self._kinds.get(id(func))
        if kind is None:
            kind = self._kind_of(func)
        flags = kind[1]
        if flags & _LIKE:
            self._like_factory(func, args, kwargs, out)
            return
        if flags & _OVER and self._shadow:
            dst = args[0]
            if (not self.known(dst) and all(self.known(a) or not isinstance(a, FakeTensor) for a in args[1:])
                    and dst.numel() * dst.element_size() == dst.untyped_storage().nbytes()):
                self.put(dst)  # every element is replaced: known if the source is
        state = self._scan(args, kwargs)
        if state < 0 and not (isinstance(out, FakeTensor) and self.keepable(out, from_host=True)):
            return  # a factory whose result is not kept
        if state != 0:
            ra = self._real_args(args, kwargs)
            try:
                with _real_only():
                    real = self._run_real(func, *ra) if ra is not None else _FAILED
            except Exception:
                real = _FAILED
            if real is not _FAILED:
                self._adopt(out, real, from_host=state < 0)
                return
        # some input unknown (or the CPU failed): what the op wrote is unknown now
        if flags & _WRITES and self._shadow:
            for t in self._written(func, args, kwargs):
                if isinstance(t, FakeTensor):
                    self.drop(t)
        if flags & _POLICY:
            with _disable_current_modes():  # the draws are CPU tensors, whatever mode the op ran under
                self._from_policy(func, args, kwargs, out)

    def _like_factory(self, func, args: tuple, kwargs: dict, out: Any) -> None:
        """``zeros_like(x)``, ``x.new_full(...)``: known as any factory result is, whatever ``x`` holds."""
        if not (isinstance(out, FakeTensor) and self.keepable(out, from_host=True)):
            return
        with _disable_current_modes():
            x = args[0]
            rargs = (torch.empty_strided(x.shape, x.stride(), dtype=x.dtype), *args[1:])
            rkw = {k: v for k, v in kwargs.items() if k != "pin_memory"}
            if rkw.get("device") is not None:
                rkw["device"] = "cpu"
            try:
                real = func(*rargs, **rkw)
            except Exception:
                return
        self._adopt(out, real, from_host=True)

    def _adopt(self, out: Any, real: Any, from_host: bool) -> None:
        if isinstance(out, FakeTensor) and isinstance(real, torch.Tensor):
            if not self.known(out) and real.shape == out.shape:
                self.put(out, real, from_host)
        elif isinstance(out, list | tuple) and isinstance(real, list | tuple):
            for o, r in zip(out, real, strict=False):
                self._adopt(o, r, from_host)

    def _from_policy(self, func, args: tuple, kwargs: dict, out: Any) -> None:
        h = INDEX_OPS.get(func)
        if h is not None:
            r = h(self.indices, args, kwargs)
            pos, idx = r if isinstance(r, tuple) else (None, r)
            target = out if pos is None else out[pos]
            if isinstance(target, FakeTensor) and tuple(idx.shape) == tuple(target.shape):
                self.put(target, idx.to(target.dtype))
            return
        v = FINITE_OPS.get(func)
        if v is not None and isinstance(out, FakeTensor):
            self.put(out, torch.full(out.shape, v, dtype=torch.bool))

    def dynamic(self, mode, func, args: tuple, kwargs: dict) -> Any:
        """A data-dependent-shape op on known inputs: the real result's shapes, as fake tensors with
        shadows; ``None`` if some input is unknown. May be called from inside FakeTensorMode."""
        with _disable_current_modes():
            return self._dynamic(mode, func, args, kwargs)

    def _dynamic(self, mode, func, args: tuple, kwargs: dict) -> Any:
        real = self.real_outputs(func, args, kwargs)
        if real is None:
            return None
        device = next((a.fake_device for a in _flat_all(args) if isinstance(a, FakeTensor)),
                      torch.device("cuda", torch.cuda.current_device()))

        def fake_of(r: torch.Tensor) -> FakeTensor:
            f = FakeTensor(mode, torch.empty_strided(r.shape, r.stride(), dtype=r.dtype, device="meta"), device)
            self.put(f, r)
            return f

        if isinstance(real, torch.Tensor):
            return fake_of(real)
        return type(real)(fake_of(r) if isinstance(r, torch.Tensor) else r for r in real)


_FAILED = object()


def _view(t: torch.Tensor, shadow: torch.UntypedStorage) -> torch.Tensor:
    """A real CPU tensor with ``t``'s layout over ``shadow`` (its data's storage)."""
    with _real_only():  # callers may sit inside FakeTensorMode (flex attention's rule)
        return torch.empty(0, dtype=t.dtype).set_(shadow, t.storage_offset(), t.shape, t.stride())


def _flat_all(args: tuple):
    for a in args:
        yield from _flat(a)
