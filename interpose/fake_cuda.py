"""Tensor- and library-level patches that make fake cuda tensors behave like real ones.

Most of "cuda" works at the dispatcher (see :mod:`interpose.dispatch`) once the
fake CUDA guard is registered; what remains are Python entry points that look
at tensor *types* or need a driver:

- ``torch.optim`` and ``clip_grad_norm_`` take the foreach/fused paths only for
  ``type(t) in _foreach_supported_types``; FakeTensor is a subclass, so without
  this they silently fall back to per-parameter loops (a different op stream);
- ``pin_memory``/``is_pinned`` need a CUDA driver: pinning is recorded, not done;
- ``tolist`` reads data directly: it syncs and returns zeros;
- ``record_stream`` takes a C stream object: a no-op (the allocator model
  ignores cross-stream lifetimes);
- ``module.cuda()``/``.to("cuda")``/``.to(dtype)``/``.half()`` keep the Parameter
  objects (an optimizer built before ``.cuda()`` sees the cuda parameters), as on a GPU;
- ``torch.save``/``torch.load`` round-trip fake tensors (:mod:`interpose.checkpoint`); ``f"{t:.3f}"`` of a 0-dim
  fake tensor formats the placeholder value; ``torch.Generator("cuda")`` works;
- ``torch.compile`` is torch's own, with Inductor's Triton kernels simulated (:mod:`interpose.compile`;
  ``RankConfig.compile="eager"`` returns the eager module/function instead);
- CUDA builds: recurrent layers (``nn.LSTM``/``GRU``/``RNN``) on fake tensors run with cuDNN off.
  ATen's cuDNN RNN path queries cuDNN on the host (a handle, weight descriptors) before it
  dispatches ``_cudnn_rnn``, which needs the driver; with cuDNN off they take the per-layer
  path the CPU build takes (documented divergence: a GPU runs one fused cuDNN RNN kernel);
- ``torchvision.ops.nms`` (PyPI's torchvision needs a CUDA build): its output size depends on the
  boxes' values; like ``nonzero``, known boxes give the real answer and unknown ones the upper
  bound (every box kept), after the host-device sync a GPU does there.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor

from interpose.checkpoint import install_checkpoints
from interpose.cuda_comm import install_cuda_comm
from interpose.cuda_random import CudaGenerator
from interpose.host_workers import install_host_workers, restore_host_workers
from interpose.patching import Patcher
from interpose.runtime import current

_PINNED: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
"""Host storages the script pinned, by data pointer -> the pinned tensor (views keep it alive through
``_base``), so a slice of a pinned batch is pinned too, as ``is_pinned`` reads the storage."""


def mark_pinned(t: torch.Tensor) -> torch.Tensor:
    """Record ``t``'s storage as pinned (pinning itself needs a driver: the memory stays pageable here)."""
    if t.device.type == "cpu" and t.untyped_storage().nbytes():
        _PINNED[t.untyped_storage().data_ptr()] = t
    return t


def host_pinned(t: torch.Tensor) -> bool:
    """Whether the script pinned the host storage of ``t`` (``pin_memory()`` / ``pin_memory=True``)."""
    return t.device.type == "cpu" and t.untyped_storage().data_ptr() in _PINNED


def _pin_memory(self: torch.Tensor, device: Any = None) -> torch.Tensor:
    """As ``at::_pin_memory``: a pinned copy with the same sizes and strides; the tensor itself stays
    pageable (already pinned: itself)."""
    if isinstance(self, FakeTensor):
        raise RuntimeError(f"cannot pin '{self.type()}' only dense CPU tensors can be pinned")
    if host_pinned(self):
        return self
    return mark_pinned(torch.empty_strided(self.size(), self.stride(), dtype=self.dtype).copy_(self))


def _is_pinned(self: torch.Tensor, device: Any = None) -> bool:
    return host_pinned(self)


class _CppPinned:
    """The ``aten::is_pinned`` CPU kernel (its library kept alive) and whether the shim is active."""

    lib: torch.library.Library | None = None
    active = False


def _cpp_is_pinned(active: bool) -> None:
    """Answer ``is_pinned()`` calls made from C++ (the Python method is patched above).

    PyTorch's own C++ asks too: DDP's reducer stages the used-parameter map in a
    pinned host buffer and asserts ``is_pinned()`` (``find_unused_parameters=True``,
    ``static_graph=True``, Hugging Face ``Trainer``'s DDP default). A CPU build has no
    pinned allocator, so the answer would be False and the assert fail. While the shim
    is active every host buffer counts as pinned; outside it, nothing is (the CPU
    build's own answer).
    """
    if _CppPinned.lib is None:
        _CppPinned.lib = torch.library.Library("aten", "IMPL")
        _CppPinned.lib.impl("is_pinned", lambda self, device=None: _CppPinned.active, "CPU")
    _CppPinned.active = active


def _make_tolist(orig):
    def tolist(self: torch.Tensor):
        if isinstance(self, FakeTensor):
            rt = current()
            rt.clock.enter()
            try:
                rt.sync_stream()
            finally:
                rt.clock.leave()
            dtype = self.dtype if not self.dtype.is_complex else torch.complex64
            return orig(torch.zeros(tuple(self.shape), dtype=dtype))
        return orig(self)

    return tolist


def _record_stream(self: torch.Tensor, stream: Any) -> None:
    return None


def _fake_format(self: torch.Tensor, spec: str) -> str:
    if self.dim() == 0:
        return self.item().__format__(spec)  # placeholder value, counts as a sync
    return object.__format__(self, spec)


def _drop_memo_refs(t: torch.Tensor) -> None:
    """Forget FakeTensorMode's memo entries for ``t`` (weak values keyed by the meta tensor
    each op output was built from; never looked up again once the op returned)."""
    if not isinstance(t, FakeTensor):
        return
    memo = t.fake_mode.fake_tensor_converter.tensor_memo
    for r in weakref.getweakrefs(t):
        if isinstance(r, weakref.KeyedRef) and memo.get(r.key) is t:
            del memo[r.key]


class _NoWeakrefs:
    """``weakref`` as ``torch.utils.swap_tensors`` sees it in :func:`_swap_despite_weakrefs`."""

    @staticmethod
    def getweakrefs(obj: object) -> list:
        return []


def _swap_despite_weakrefs(orig: Any, t1: torch.Tensor, t2: torch.Tensor) -> None:
    """Swap although the script holds weak references to a tensor (DeepSpeed keeps a
    ``weakref.finalize`` per parameter). The swap keeps each Python object's identity, so a weak
    reference to the Parameter still reaches the Parameter, now a cuda one, which is what a GPU
    build's ``param.data = cuda_copy`` gives its holders. torch refuses weakrefs because C++-side
    memos keyed by them (FakeTensorMode's converter) would describe the old tensor: those are
    dropped before the swap (:func:`_drop_memo_refs`)."""
    import torch.utils as tu

    saved = tu.weakref  # type: ignore[attr-defined]
    tu.weakref = _NoWeakrefs  # type: ignore[assignment]  # a stand-in for the module during the swap
    try:
        return orig(t1, t2)
    finally:
        tu.weakref = saved  # type: ignore[attr-defined]


def _make_swap_tensors(orig):
    def swap_tensors(t1, t2):
        """``Module._apply`` swaps parameters under the shim (see ``_make_module_apply``);
        the swap refuses tensors something holds weak references to (FakeTensorMode's
        converter, user code), so fall back to the ``.data =`` path a real GPU's
        parameters take whenever the two tensor types allow it."""
        _drop_memo_refs(t1)
        _drop_memo_refs(t2)
        try:
            return orig(t1, t2)
        except RuntimeError as e:
            if "weakref" in str(e):
                return _swap_despite_weakrefs(orig, t1, t2)
            same_kind = isinstance(t1, FakeTensor) == isinstance(t2, FakeTensor)
            if not same_kind or not torch._has_compatible_shallow_copy_type(t1, t2):
                raise
            with torch.no_grad():
                t1.data = t2.detach()
            if isinstance(t2, torch.nn.Parameter) and not isinstance(t1, torch.nn.Parameter):
                t1._is_param = True  # type: ignore[attr-defined]
            return None

    return swap_tensors


_DATA = torch._C.TensorBase.__dict__["data"]
"""The C++ ``Tensor.data`` descriptor."""


def _get_data(self: torch.Tensor) -> torch.Tensor:
    return _DATA.__get__(self)


def _set_data(self: torch.Tensor, value: torch.Tensor) -> None:
    """``cpu_param.data = t.to("cuda")`` (FSDP1 moving a module, Megatron's router, many scripts): on a GPU
    build the Parameter becomes a cuda one in place. A fake tensor is a Python subclass whose C++ side is
    a meta tensor, so the plain ``.data =`` would leave the Parameter on ``meta``: swap the fake tensor
    into the object instead (identity, ``requires_grad`` and Parameter-ness kept)."""
    if isinstance(value, FakeTensor) and not isinstance(self, FakeTensor):
        new = value.detach().requires_grad_(self.requires_grad)
        was_param = isinstance(self, torch.nn.Parameter)
        grad = self.grad
        torch.utils.swap_tensors(self, new)  # the shim's (weakrefs allowed)
        if was_param and not isinstance(self, torch.nn.Parameter):
            self._is_param = True  # type: ignore[attr-defined]
        if grad is not None and self.grad is None and isinstance(grad, FakeTensor):
            self.grad = grad
        return
    _DATA.__set__(self, value)


def _make_module_apply(orig):
    def _apply(self, fn, recurse=True):
        """``Module._apply`` keeping parameter identity across ``.cuda()``/``.to("cuda")``.

        On a GPU build a CPU parameter and its cuda copy have compatible tensor
        types, so ``_apply`` does ``param.data = cuda_copy`` and the Parameter
        objects an optimizer already holds become cuda ones. A fake tensor is a
        Python subclass, so ``_apply`` would create new Parameters instead; swap
        the new fake tensor into the old Parameter object (the path PyTorch takes
        under ``set_swap_module_params_on_conversion(True)``). The
        ``get_overwrite_module_params_on_conversion()`` opt-out keeps new objects."""
        fut = torch.__future__
        if fut.get_overwrite_module_params_on_conversion() or fut.get_swap_module_params_on_conversion():
            return orig(self, fn, recurse)
        fut.set_swap_module_params_on_conversion(True)
        try:
            return orig(self, fn, recurse)
        finally:
            fut.set_swap_module_params_on_conversion(False)

    return _apply


def _make_rnn_without_cudnn(orig):
    def rnn(input, *args, **kwargs):
        if not isinstance(input, FakeTensor) or not torch._C._get_cudnn_enabled():
            return orig(input, *args, **kwargs)
        torch._C._set_cudnn_enabled(False)
        try:
            return orig(input, *args, **kwargs)
        finally:
            torch._C._set_cudnn_enabled(True)

    return rnn


def _make_flatten_parameters(orig):
    def flatten_parameters(self) -> None:
        """cuDNN's single weight buffer: not made for fake weights (their RNNs run without cuDNN)."""
        if any(isinstance(w, FakeTensor) for w in getattr(self, "_flat_weights", ())):
            return None
        return orig(self)

    return flatten_parameters


def _nms_bound(mode, args, kwargs) -> FakeTensor:
    boxes = args[0]
    return FakeTensor(mode, torch.empty([boxes.shape[0]], dtype=torch.long, device="meta"), boxes.device)


def _install_torchvision_ops(torchvision) -> None:
    """torchvision's data-dependent ops join the shim's (``interpose.fake_mode.DYNAMIC_SHAPE``)."""
    from interpose.fake_mode import DYNAMIC_SHAPE

    nms = getattr(getattr(torch.ops, "torchvision", None), "nms", None)
    if nms is not None:
        DYNAMIC_SHAPE[nms.default] = _nms_bound


def _uninstall_torchvision_ops() -> None:
    from interpose.fake_mode import DYNAMIC_SHAPE

    for op in [op for op, bound in DYNAMIC_SHAPE.items() if bound is _nms_bound]:
        del DYNAMIC_SHAPE[op]


_cpp_kernels: Any = None
"""The ``torch.library`` registrations of :func:`_install_cpp_kernels` while installed."""


def _local_scalar_dense_cuda(x: torch.Tensor) -> Any:
    """``aten::_local_scalar_dense`` for the CUDA key: ``torch.tensor([t0, t1])`` of cuda scalars reads each
    element in C++ with Python dispatch excluded, so the shim's mode never sees that read and it lands
    on the CUDA kernel (absent from a CPU build, the driver on a CUDA one). Here it reads as ``.item()``
    does under the mode: a device-to-host copy, the known value or the placeholder."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    from interpose.data_dependent import _item
    from interpose.dispatch import SimDispatchMode

    mode = next((m for m in _get_current_dispatch_mode_stack() if isinstance(m, SimDispatchMode)), None)
    if mode is None or not isinstance(x, FakeTensor):
        raise NotImplementedError("phantora: _local_scalar_dense of a cuda tensor outside the simulation")
    op = torch.ops.aten._local_scalar_dense.default
    return _item(mode, op, (x,), {})


def _install_cpp_kernels() -> None:
    import warnings

    global _cpp_kernels
    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():  # a CUDA build's own kernel is overridden (and back at uninstall)
        warnings.simplefilter("ignore")
        lib.impl("_local_scalar_dense", _local_scalar_dense_cuda, "CUDA")
    _cpp_kernels = lib


def _uninstall_cpp_kernels() -> None:
    global _cpp_kernels
    if _cpp_kernels is not None:
        _cpp_kernels._destroy()
        _cpp_kernels = None


def install_fake_cuda(p: Patcher) -> None:
    T = torch.Tensor
    p.set(T, "pin_memory", _pin_memory)
    p.set(T, "is_pinned", _is_pinned)
    _cpp_is_pinned(True)
    p.set(T, "tolist", _make_tolist(torch._C.TensorBase.tolist))
    p.set(T, "record_stream", _record_stream)
    from interpose.compile import install_compile
    from interpose.runtime import current

    current().compile_stats = install_compile(p, current().cfg.compile)
    from interpose.conv_layout import install_conv_layout

    install_conv_layout(p)  # cuDNN's conv output layouts on every build
    p.set(FakeTensor, "__format__", _fake_format)
    install_checkpoints(p)
    p.set(torch, "Generator", CudaGenerator)
    p.set(torch.utils, "swap_tensors", _make_swap_tensors(torch.utils.swap_tensors))
    p.set(torch.nn.Module, "_apply", _make_module_apply(torch.nn.Module._apply))
    p.set(T, "data", property(_get_data, _set_data))
    for types in _foreach_type_lists():
        if FakeTensor not in types:
            types.append(FakeTensor)
    p.after_import("torchvision", _install_torchvision_ops)
    install_host_workers(p)  # DataLoader workers: real waits, no shim in forked children
    install_cuda_comm(p)  # nn.DataParallel: scatter/gather/broadcast_coalesced, parallel_apply
    _install_cpp_kernels()  # CUDA kernels C++ reaches with Python dispatch excluded
    if torch.backends.cudnn.is_available():  # CUDA builds (see the module docstring)
        for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
            p.set(torch._VF, name, _make_rnn_without_cudnn(getattr(torch._VF, name)))
        p.set(torch.nn.RNNBase, "flatten_parameters", _make_flatten_parameters(torch.nn.RNNBase.flatten_parameters))


def _foreach_type_lists() -> list[list[type]]:
    import importlib

    opt = importlib.import_module("torch.optim.optimizer")
    fu = importlib.import_module("torch.utils._foreach_utils")
    return [opt._foreach_supported_types, fu._foreach_supported_types]


def restore_fake_cuda() -> None:
    from interpose.compile import uninstall_compile

    uninstall_compile()
    restore_host_workers()
    _uninstall_cpp_kernels()
    _cpp_is_pinned(False)
    _uninstall_torchvision_ops()
    for types in _foreach_type_lists():
        while FakeTensor in types:
            types.remove(FakeTensor)
