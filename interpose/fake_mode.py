"""The shim's FakeTensorMode: no device constant-folding, upper bounds for data-dependent sizes.

Ops whose output size depends on values (``nonzero``, ``unique``) are answered from known values
when there are some (:mod:`interpose.values`), else with an upper bound (every element selected
or distinct), so boolean indexing reached from inside other ops' decompositions keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from interpose.output_layouts import OUTPUT_LAYOUT

aten = torch.ops.aten


class SimFakeMode(FakeTensorMode):
    """FakeTensorMode that never constant-folds ops onto a device.

    FakeTensorMode decides from ``torch.cuda.is_available()`` whether it may
    run small constant computations for real on the target device; the shim
    makes that report True, so pin the answer to "there is no device".
    """

    @property
    def avoid_device_init(self) -> bool:  # type: ignore[override]
        return True

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no per-call Dynamo wrapper: the modes run inside compiled code, never traced (see below)

    @classmethod
    def ignore_compile_internals(cls) -> bool:
        return True  # off while torch.compile compiles, on while compiled code runs (interpose.compile)

    uncached_next = False
    """Set by the shim before an op its own result cache will learn (:class:`interpose.fastpath.OutputCache`):
    that one op skips FakeTensorMode's cache, whose key and entry cost more than the op's meta kernel
    (the ops it runs inside keep the cache)."""
    _cache_was: bool | None = None

    def dispatch(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if self.uncached_next:
            self.uncached_next = False
            self._cache_was, self.cache_enabled = self.cache_enabled, False
            try:
                return super().dispatch(func, types, args, kwargs or {})
            finally:
                self._restore_cache()
        return super().dispatch(func, types, args, kwargs or {})

    def _dispatch_impl(self, func, types, args, kwargs):
        self._restore_cache()  # the op's own inner ops (decompositions) use the cache again
        return super()._dispatch_impl(func, types, args, kwargs)

    def _restore_cache(self) -> None:
        if self._cache_was is not None:
            self.cache_enabled, self._cache_was = self._cache_was, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # Ops with data-dependent output sizes, reached from inside other ops'
        # decompositions (boolean indexing -> nonzero): answer with the upper bound.
        h = DYNAMIC_SHAPE.get(func)
        if h is not None:
            from interpose.runtime import current

            rt = current()
            rt.sync_stream()  # a real GPU copies the size back to the host here
            out = rt.values.dynamic(self, func, args, kwargs or {})
            return h(self, args, kwargs or {}) if out is None else out
        out = super().__torch_dispatch__(func, types, args, kwargs)
        fix = OUTPUT_LAYOUT.get(func)
        return out if fix is None else fix(self, args, kwargs or {}, out)


def fake_empty(mode: FakeTensorMode, shape: list[int], dtype: torch.dtype, like: torch.Tensor) -> FakeTensor:
    """An uninitialised fake tensor on ``like``'s device."""
    return FakeTensor(mode, torch.empty(shape, dtype=dtype, device="meta"), like.device)


def _nonzero_bound(mode: FakeTensorMode, args: tuple, kwargs: dict) -> FakeTensor:
    x = args[0]
    return fake_empty(mode, [x.numel(), x.dim()], torch.long, x)


def _unique2_bound(mode: FakeTensorMode, args: tuple, kwargs: dict) -> tuple[FakeTensor, ...]:
    x = args[0]
    n = x.numel()
    inverse = kwargs.get("return_inverse", args[2] if len(args) > 2 else False)
    counts = kwargs.get("return_counts", args[3] if len(args) > 3 else False)
    return (
        fake_empty(mode, [n], x.dtype, x),
        fake_empty(mode, list(x.shape) if inverse else [0], torch.long, x),
        fake_empty(mode, [n] if counts else [0], torch.long, x),
    )


DYNAMIC_SHAPE: dict[Any, Callable[[FakeTensorMode, tuple, dict], Any]] = {
    aten.nonzero.default: _nonzero_bound,
    aten._unique2.default: _unique2_bound,
}
"""Upper-bound output builders per data-dependent op; extensions add theirs (torchvision's ``nms``)."""
