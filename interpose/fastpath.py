"""A lean result cache for fake-tensor ops whose result depends only on input metadata.

FakeTensorMode's own dispatch cache spends most of a fake op's host time
building its key. A training loop repeats the same few hundred (op, input
metadata) combinations, so for functional aten ops with fresh outputs, plain
views of their first argument, in-place ops that return their first argument,
mutating ops that return nothing (``_foreach_*_``, ``_fused_adamw_``) and ops returning a list of fresh
tensors (``_foreach_norm``) we key
on (op, shapes, strides, dtypes, devices, scalar args) and build the result
directly. The first call of every key goes through the full FakeTensorMode and
is checked (fresh dense storage, or the expected aliasing) before it is cached,
so anything unusual simply stays on the slow path.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

_SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
_METADATA_MUTATORS = {"aten.resize_", "aten.resize_as_", "aten.set_", "aten.as_strided_", "aten.copy_"}
_BANNED_TAGS = {torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output, torch.Tag.inplace_view}

Dense = tuple[tuple[int, ...], tuple[int, ...], torch.dtype, torch.device]
"""One fresh output: shape, stride, dtype, device."""
Output = Dense | int | None
"""One output of a functional op: a fresh tensor, a size, or an undefined tensor (``Tensor?``)."""
View = tuple[Literal["view"], tuple[int, ...], tuple[int, ...], int, torch.dtype, torch.device]
"""A view of argument 0: ``"view"``, shape, stride, storage offset, dtype, device."""
ListOut = tuple[Literal["list"], tuple[Dense, ...]]
"""A ``Tensor[]`` of fresh tensors (``_foreach_norm``): ``"list"`` and each element's metadata."""
Spec = tuple[Literal["inplace"]] | tuple[Literal["mutate"]] | View | ListOut | tuple[Output, ...]
"""What a cached op returns: argument 0 (``inplace``), nothing (``mutate``), a view (also of an op that
is not a view op but returns argument 0's storage, ``_unsafe_view``), or its outputs."""


def _functional(func: torch._ops.OpOverload) -> bool | str:
    """How an op may use the cache: True (functional: fresh outputs), ``"view"`` (a view of
    argument 0), ``"inplace"`` (mutates and returns argument 0), ``"mutate"`` (mutates its
    arguments, returns nothing), ``"list"`` (a ``Tensor[]`` of fresh tensors), or False (always the
    full FakeTensorMode)."""
    if func.namespace != "aten":
        return False
    schema = func._schema
    if str(func.overloadpacket) in _METADATA_MUTATORS:
        return False
    writes = [a.alias_info is not None and a.alias_info.is_write for a in schema.arguments]
    if any(writes):
        if _BANNED_TAGS & set(func.tags):
            return False
        if any(a.alias_info is not None and not a.alias_info.is_write for a in schema.arguments):
            return False
        if not schema.returns:
            return "mutate"  # e.g. _foreach_add_.List, _fused_adamw_: returns None
        if (
            len(schema.returns) == 1
            and writes[0]
            and schema.returns[0].alias_info is not None
            and str(schema.returns[0].type) == "Tensor"
            and schema.arguments[0].kwarg_only is False
        ):
            return "inplace"  # e.g. add_.Tensor: returns its first argument
        return False
    if func.is_view:
        if len(schema.returns) != 1 or str(schema.returns[0].type) != "Tensor" or not schema.arguments:
            return False
        a0 = schema.arguments[0].alias_info
        if a0 is None or a0.is_write or any(a.alias_info is not None for a in schema.arguments[1:]):
            return False
        return "view" if not (_BANNED_TAGS & set(func.tags)) else False
    if not schema.returns or any(a.alias_info is not None for a in schema.arguments):
        return False
    if _BANNED_TAGS & set(func.tags):
        return False
    if len(schema.returns) == 1 and schema.returns[0].alias_info is None and str(schema.returns[0].type) == "List[Tensor]":
        return "list"  # e.g. _foreach_norm.Scalar, _foreach_sqrt: one fresh tensor per input
    return not any(r.alias_info is not None or str(r.type) not in _FUNCTIONAL_RETURNS for r in schema.returns)


_FUNCTIONAL_RETURNS = {"Tensor", "Tensor?", "SymInt", "int"}
"""Return types a functional op may have and stay cacheable: tensors (maybe undefined) and sizes that
meta kernels compute from shapes (flash/cuDNN attention's ``max_q``/``max_k``)."""


def _desc(a: Any) -> Any:
    """Hashable description of one argument, or raise _Skip."""
    if type(a) is FakeTensor:
        if a.is_conj() or a.is_neg():
            raise _Skip
        return (a.shape, a.stride(), a.dtype, a._fake_device, a.storage_offset())
    if isinstance(a, torch.Tensor):
        raise _Skip  # real tensors may carry constants FakeTensorMode folds; fake subclasses: slow path
    if isinstance(a, _SCALARS):
        return (type(a), a)
    if type(a) in (list, tuple):
        return (type(a), tuple([_desc(x) for x in a]))
    raise _Skip


_FLOAT = (float,)


def _desc_mut(a: Any) -> Any:
    """:func:`_desc` for an op that only mutates its arguments (kinds ``inplace``, ``mutate``): a float is
    described by its type, not its value. Such an op's result is its argument (or nothing) whatever the
    floats, and kernel signatures leave floats out too (``profiles.compute._scalar_text``), so Adam's
    per-step bias corrections (``_foreach_div_.ScalarList``) hit the cache every step."""
    if type(a) is float:
        return _FLOAT
    if type(a) in (list, tuple):
        return (type(a), tuple([_desc_mut(x) for x in a]))
    return _desc(a)


class _Skip(Exception):
    pass


_META = torch.device("meta")
_no_python_dispatch = torch._C._DisableTorchDispatch
"""Makes the cached outputs' meta tensors without passing through the dispatch modes (the shim's
own included): the guard costs well under a microsecond, ``in_kernel_invocation_manager`` ~5."""
_empty_strided = torch.empty_strided
_make_subclass = torch.Tensor._make_subclass
_MUTABLE_DATA_PTR_POLICY = (
    torch._C._set_throw_on_mutable_data_ptr,
    torch._C._set_warn_deprecated_on_mutable_data_ptr,
)
"""What ``FakeTensor.__new__`` sets on a new tensor, by the mode's ``_allow_unsafe_data_ptr_access``."""
_MISSING: Any = object()


class _LeanFakes:
    """Builds the FakeTensors of one mode the way ``FakeTensor.__new__`` leaves them, at a third of its
    cost: the constructor normalises the device and sets two dozen attributes through descriptors on
    every call, and a training step makes thousands. The attributes are copied from a tensor the
    constructor itself built for that device, so they follow torch's own set; a mode or device whose
    template is not the plain one (all ``None`` but the mode and device) keeps the constructor."""

    def __init__(self, mode: FakeTensorMode) -> None:
        self.mode = mode
        self._templates: dict[torch.device, dict[str, Any] | None] = {}
        self._data_ptr_policy = _MUTABLE_DATA_PTR_POLICY[bool(mode._allow_unsafe_data_ptr_access)]

    def _template(self, device: torch.device) -> dict[str, Any] | None:
        with _no_python_dispatch():
            m = _empty_strided((1,), (1,), dtype=torch.float32, device=_META)
        t = dict(FakeTensor(self.mode, m, device).__dict__)
        plain = (
            t.get("_fake_device") == device
            and t.get("fake_mode") is self.mode
            and all(v is None for k, v in t.items() if k not in ("_fake_device", "fake_mode"))
        )
        return t if plain else None

    def make(self, meta: torch.Tensor, device: torch.device) -> FakeTensor:
        t = self._templates.get(device, _MISSING)
        if t is _MISSING:
            t = self._templates[device] = self._template(device)
        if t is None:
            return FakeTensor(self.mode, meta, device)
        f = _make_subclass(FakeTensor, meta, False, dispatch_device=True, device_for_backend_keys=device)
        self._data_ptr_policy(f)
        f.__dict__.update(t)
        return f


class OutputCache:
    """Maps (op, input metadata) to output metadata for functional ops."""

    def __init__(self, mode: FakeTensorMode) -> None:
        self.mode = mode
        self._eligible: dict[int, tuple[Any, bool | str]] = {}
        """Per op overload, by ``id`` (an overload's ``__hash__`` is Python; keys hold the id too): the op,
        kept so the id is never reused, and whether (how) its results are cacheable."""
        self.entries: dict[tuple[Any, ...], Spec | None] = {}
        self.hits = 0
        self.misses = 0
        self._lean = _LeanFakes(mode)

    def key(self, func: Any, args: tuple, kwargs: dict) -> tuple[Any, ...] | None:
        e = self._eligible.get(id(func))
        if e is None:
            e = self._eligible[id(func)] = (func, _functional(func))
        ok = e[1]
        if not ok or (ok == "view" and torch.is_inference_mode_enabled()):
            return None  # a view made in inference_mode must share its base's version counter
        d = _desc_mut if ok == "inplace" or ok == "mutate" else _desc
        try:
            k: tuple[Any, ...] = (id(func), tuple([d(a) for a in args]))
            if kwargs:
                k = (*k, tuple([(n, d(v)) for n, v in kwargs.items()]))
        except _Skip:
            return None
        return k

    def build(self, spec: Spec, args: tuple) -> FakeTensor | tuple[FakeTensor | int | None, ...] | list | None:
        self.hits += 1
        kind = spec[0]
        if kind == "inplace":
            return args[0]
        if kind == "mutate":
            return None
        if kind == "list":
            return [self._fresh(o) for o in cast(ListOut, spec)[1]]
        make = self._lean.make
        if kind == "view":
            _, shape, stride, offset, dtype, device = cast(View, spec)
            with _no_python_dispatch():
                m = _empty_strided((0,), (1,), dtype=dtype, device=_META)
                m.set_(args[0].untyped_storage(), offset, shape, stride)
            return make(m, device)
        outs = cast(tuple[Output, ...], spec)
        if len(outs) == 1:
            shape, stride, dtype, device = cast(Dense, outs[0])
            with _no_python_dispatch():
                m = _empty_strided(shape, stride, dtype=dtype, device=_META)
            return make(m, device)
        return tuple([o if o is None or type(o) is int else self._fresh(cast(Dense, o)) for o in outs])

    def _fresh(self, o: Dense) -> FakeTensor:
        shape, stride, dtype, device = o
        with _no_python_dispatch():
            m = _empty_strided(shape, stride, dtype=dtype, device=_META)
        return self._lean.make(m, device)

    @staticmethod
    def _list_spec(args: tuple, out: Any) -> ListOut | None:
        """A ``Tensor[]`` result: cached if every element is a fresh dense tensor of its own storage."""
        if not isinstance(out, list):
            return None
        taken = {t.untyped_storage()._cdata for a in args for t in (a if type(a) in (list, tuple) else (a,))
                 if isinstance(t, FakeTensor)}
        outs = [_fresh_dense(o, taken) for o in out]
        return None if any(o is None for o in outs) else ("list", tuple(cast(list[Dense], outs)))

    def learn(self, k: tuple, args: tuple, out: Any) -> None:
        """Cache ``out``'s metadata under ``k`` if every output is a fresh dense tensor."""
        self.misses += 1
        kind = self._eligible[k[0]][1]
        if kind == "inplace":
            self.entries[k] = ("inplace",) if out is args[0] else None
            return
        if kind == "mutate":
            self.entries[k] = ("mutate",) if out is None or out == () else None
            return
        if kind == "view":
            ok = (
                isinstance(out, FakeTensor)
                and not out.is_conj()
                and not out.is_neg()
                and out.untyped_storage()._cdata == args[0].untyped_storage()._cdata
            )
            self.entries[k] = (
                (
                    "view",
                    tuple(out.shape),
                    tuple(out.stride()),
                    out.storage_offset(),
                    out.dtype,
                    out.fake_device,
                )
                if ok
                else None
            )
            return
        if kind == "list":
            self.entries[k] = self._list_spec(args, out)
            return
        outs = out if isinstance(out, tuple) else (out,)
        a0 = args[0] if args else None
        if (
            len(outs) == 1
            and isinstance(out, FakeTensor)
            and isinstance(a0, FakeTensor)
            and out.untyped_storage()._cdata == a0.untyped_storage()._cdata
            and not out.is_conj()
            and not out.is_neg()
        ):  # not a view op, but its result aliases argument 0 (``_unsafe_view``): rebuilt as a view is
            alias: View = (
                "view",
                tuple(out.shape),
                tuple(out.stride()),
                int(out.storage_offset()),
                out.dtype,
                out.fake_device,
            )
            self.entries[k] = alias
            return
        in_storages = {a.untyped_storage()._cdata for a in args if isinstance(a, FakeTensor)}
        spec: list[Output] = []
        for o in outs:
            if o is None or type(o) is int:
                spec.append(o)
                continue
            if not isinstance(o, FakeTensor) or o.storage_offset() != 0 or o.is_conj() or o.is_neg():
                self.entries[k] = None
                return
            st = o.untyped_storage()
            if st._cdata in in_storages or st.nbytes() != _dense_nbytes(o):
                self.entries[k] = None
                return
            spec.append((tuple(o.shape), tuple(o.stride()), o.dtype, o.fake_device))
        if len(spec) == 1 and not isinstance(spec[0], tuple):
            self.entries[k] = None  # a lone size or undefined tensor: not worth a special case
            return
        self.entries[k] = tuple(spec)


def _fresh_dense(o: Any, taken: set[int]) -> Dense | None:
    """``o``'s metadata if it is a fresh dense tensor whose storage is not in ``taken`` (added to it)."""
    if not isinstance(o, FakeTensor) or o.storage_offset() != 0 or o.is_conj() or o.is_neg():
        return None
    st = o.untyped_storage()
    if st._cdata in taken or st.nbytes() != _dense_nbytes(o):
        return None
    taken.add(st._cdata)
    return (tuple(o.shape), tuple(o.stride()), o.dtype, o.fake_device)


def _dense_nbytes(t: torch.Tensor) -> int:
    if t.numel() == 0:
        return 0
    extent = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True))
    return extent * t.element_size()
