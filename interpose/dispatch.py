"""The dispatch-level router: fake GPU ops get simulated, CPU ops run for real.

:class:`SimDispatchMode` is a ``TorchDispatchMode`` that stays on the mode stack
while the script runs, so it sees every aten op after autograd and autocast.
Ops that touch a fake tensor or ask for ``device='cuda'`` run under the
:class:`~interpose.fake_mode.SimFakeMode` (shapes, dtypes, strides exact; no data), get a duration
from the compute model, are queued on the current simulated stream and have
their new storages charged to the caching-allocator model. All other ops (data
loading, numpy glue) run for real on the CPU.

Ops that need more than "run on fake tensors, time, charge" have a handler in the special-op
table, each family in its own module: host<->device copies (:mod:`interpose.host_copies`),
data-dependent reads and sizes (:mod:`interpose.data_dependent`), functional collectives
(:mod:`interpose.functional_collectives`), flex attention (:mod:`interpose.flex_attention`),
SDPA's backend choice (:mod:`interpose.sdpa`) and grouped matmuls (:mod:`interpose.grouped_mm`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch._ops import HigherOrderOperator
from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from interpose import calibration, data_dependent, functional_collectives, grad_accumulation, host_copies
from interpose.allocator import SimulatedOOM
from interpose.compile.extern import functional_form
from interpose.cuda_memory import oom_message
from interpose.device_kernels import decomposes_on_device, register_device_kernels
from interpose.fake_mode import SimFakeMode
from interpose.fastpath import OutputCache
from interpose.flex_attention import higher_order
from interpose.grouped_mm import handler as grouped_mm_handler
from interpose.op_args import involves_fake, shapes_text
from interpose.reduce_scratch import REDUCE_PACKETS, scratch_bytes
from interpose.runtime import RankRuntime
from interpose.workspace import MATMUL_PACKETS, CublasWorkspaces
from profiles.compute import _TF32_OPS as TF32_OPS  # ops whose signature carries the TF32 switch
from profiles.compute import ComputeModel, signature_of

__all__ = ["Handler", "SimDispatchMode", "SimFakeMode"]

aten = torch.ops.aten
_UNSEEN: Any = object()
_PRIM_DEVICE = torch.ops.prim.device.default

Handler = Callable[[Any, tuple, dict], Any]
"""A special-op handler: ``(func, args, kwargs) -> result``, called inside ``clock.enter``/``leave``."""

_RNG_INPLACE = {
    aten.uniform_.default, aten.exponential_.default, aten.random_.default, getattr(aten.random_, "from"),
    aten.random_.to, aten.log_normal_.default, aten.cauchy_.default, aten.geometric_.default,
}  # fmt: skip

_PLAIN_TYPES = frozenset({torch.Tensor, torch.nn.Parameter})
"""Tensor types the mode handles itself; any other subclass in ``types`` dispatches on its own."""


def _noop(func: Any, args: tuple, kwargs: dict) -> None:
    return None


def _sdp_choice(func: Any, args: tuple, kwargs: dict) -> Any:
    from interpose.sdpa import choose_backend

    return choose_backend(*args, **kwargs)


class _Op:
    """What the mode needs to know of one op overload, found once (an overload's ``__hash__`` is Python
    code, and every dispatched op asked several tables). Keeps ``func``, so its ``id`` is never reused."""

    __slots__ = ("dynamic", "func", "handler", "implicit", "matmul", "reduce", "tf32", "view")

    def __init__(self, func: Any, handler: Handler | None) -> None:
        self.func = func
        self.handler = handler
        self.implicit = decomposes_on_device(func.name())
        self.dynamic = torch.Tag.dynamic_output_shape in func.tags
        self.view = bool(func.is_view)
        packet = func.overloadpacket
        self.matmul = packet in MATMUL_PACKETS
        self.tf32 = packet in TF32_OPS
        self.reduce = packet in REDUCE_PACKETS


def _on_meta(out: Any) -> bool:
    """The op's tensor results are all on the meta device (its inputs may be fake cuda tensors)."""
    if isinstance(out, torch.Tensor):
        return out.device.type == "meta"
    if isinstance(out, list | tuple) and out:
        return all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in out)
    return False


class SimDispatchMode(TorchDispatchMode):
    """Routes, times and records every GPU op of one rank (see module docstring)."""

    supports_higher_order_operators = True
    """Higher-order ops (flex attention) reach ``__torch_dispatch__``: see :mod:`interpose.flex_attention`."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no per-call Dynamo wrapper: the modes run inside compiled code, never traced (see below)

    @classmethod
    def ignore_compile_internals(cls) -> bool:
        return True  # off while torch.compile compiles, on while compiled code runs (interpose.compile)

    def __init__(self, rt: RankRuntime, fake_mode: FakeTensorMode, model: ComputeModel) -> None:
        super().__init__()
        register_device_kernels()
        self.rt = rt
        self.values = rt.values
        self.fake = fake_mode
        self.model = model
        self._timings: dict[Any, tuple[float, float, str, str, str, str, str]] = {}
        """Per signature: (dur_us, launch_us, source, shapes text, dtype text, trace key, op name)."""
        self._key_timings: dict[tuple, tuple[float, float, str, str, str, str, str]] = {}
        """The same tuples by result-cache key: a cache hit skips building the signature."""
        self._scratch: dict[tuple, tuple[int, int]] = {}
        """Reduction scratch sizes (:mod:`interpose.reduce_scratch`) by result-cache key."""
        self._ops: dict[int, _Op] = {}
        """Per op overload, by ``id``: what routing and accounting need to know of it (:class:`_Op`)."""
        self.workspaces = CublasWorkspaces(rt)
        self.outputs = OutputCache(fake_mode)
        self.special: dict[Any, Handler] = {
            aten._fused_sdp_choice.default: _sdp_choice,
            aten._grouped_mm.default: grouped_mm_handler(self),
            aten._assert_async.default: _noop,
            aten._assert_async.msg: _noop,
            aten.record_stream.default: _noop,
            **host_copies.handlers(self),
            **data_dependent.handlers(self),
            **grad_accumulation.handlers(self),
        }
        for f in _RNG_INPLACE:
            self.special[f] = self._rng_inplace
        self._collective = partial(functional_collectives.collective, self)

    # -- routing ------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is _PRIM_DEVICE:  # C++ asking a fake tensor for its device: very frequent
            self.rt.clock.pending_calls += 1
            a = args[0]
            return a.fake_device if isinstance(a, FakeTensor) else func(*args)
        if isinstance(func, HigherOrderOperator):
            return higher_order(self, func, types, args, kwargs or {})
        for t in types:
            if t not in _PLAIN_TYPES and not issubclass(t, FakeTensor):
                # a tensor subclass (DTensor, ...): let it unwrap itself. Returning NotImplemented keeps
                # this mode on the stack while the subclass runs, so its inner ops on the fake local
                # tensors are simulated and timed here; calling ``func`` from in here would run them
                # with the mode popped (not timed, and host-to-device copies fail).
                return NotImplemented
        if kwargs is None:
            kwargs = {}
        if not involves_fake(args, kwargs):
            if kwargs.get("pin_memory"):  # pinned host memory needs a driver: recorded, not done
                from interpose.fake_cuda import mark_pinned

                out = func(*args, **dict(kwargs, pin_memory=False))
                return mark_pinned(out) if isinstance(out, torch.Tensor) else out
            return func(*args, **kwargs)
        clock = self.rt.clock
        clock.enter()
        try:
            op = self._ops.get(id(func))
            if op is None:
                op = self._op(func)
            if op.implicit:
                # CompositeImplicitAutograd ops reach the mode only where autograd's keys
                # are skipped (``inference_mode``: ``to.dtype_layout``, ...): decompose them,
                # so their pieces (``_to_copy``) are routed like everywhere else.
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            h = op.handler
            try:
                return self.simulate(func, args, kwargs) if h is None else h(func, args, kwargs)
            except SimulatedOOM as e:
                raise torch.cuda.OutOfMemoryError(
                    oom_message(
                        e.request_bytes, e.allocated_bytes, e.reserved_bytes, e.limit_bytes, self.rt.device
                    )
                ) from None
        finally:
            clock.leave()

    def _op(self, func) -> _Op:
        h = self.special.get(func)
        if h is None and func.namespace in functional_collectives.NAMESPACES:
            h = self._collective
        op = self._ops[id(func)] = _Op(func, h)
        return op

    def simulate(self, func, args: tuple, kwargs: dict) -> Any:
        """Run one GPU op on fake tensors (result cache first), keep known values true, then
        account for it."""
        k = self.outputs.key(func, args, kwargs)
        spec = None
        if k is not None:
            spec = self.outputs.entries.get(k, _UNSEEN)
            if spec is not _UNSEEN and spec is not None:
                out = self.outputs.build(spec, args)
                self.values.propagate(func, args, kwargs, out)
                self.account(func, args, kwargs, out, k=k)
                return out
        op = self._ops.get(id(func)) or self._op(func)
        if op.dynamic:
            out = self.values.dynamic(self.fake, func, args, kwargs)
            if out is not None:  # known inputs: the real output sizes
                self.rt.sync_stream()  # a real GPU copies the size back to the host here
                self.account(func, args, kwargs, out)
                return out
        try:
            with self.fake:
                sim = self.fake if isinstance(self.fake, SimFakeMode) else None
                if sim is not None and spec is _UNSEEN:
                    sim.uncached_next = True  # this cache learns it: FakeTensorMode's need not
                try:
                    out = func(*args, **kwargs)
                finally:
                    if sim is not None:
                        sim.uncached_next = False
        except DynamicOutputShapeException:
            raise RuntimeError(
                f"phantora: the output size of {func} depends on values the simulator does not know "
                "(computed from fake floating-point data); see the README, 'Known values'"
            ) from None
        if k is not None and k not in self.outputs.entries:
            self.outputs.learn(k, args, out)
        self.values.propagate(func, args, kwargs, out)
        self.account(func, args, kwargs, out, k=k)
        return out

    def calibrate(self, n: int = 300) -> float:
        """One dispatch round trip in microseconds (:func:`interpose.calibration.dispatch_round_trip_us`)."""
        return calibration.dispatch_round_trip_us(self, n)

    def calibrate_entry(self, n: int = 200, reps: int = 5) -> float:
        """Host cost of a tensor call outside the shim (:func:`interpose.calibration.entry_us`)."""
        return calibration.entry_us(self, n, reps)

    # -- accounting -----------------------------------------------------------------
    def track(self, out: Any) -> None:
        """Charge new output storages to the allocator model (freed when the storage dies)."""
        if isinstance(out, FakeTensor) and out.device.type != "meta":
            st = out.untyped_storage()
            self.rt.track_storage(st, st.nbytes())
        elif isinstance(out, list | tuple):
            for o in out:
                if isinstance(o, FakeTensor | list | tuple):
                    self.track(o)

    def account(self, func, args: tuple, kwargs: dict, out: Any, stream=None, k: tuple | None = None) -> None:
        """Charge memory for new outputs and queue the op's kernel on the stream. ``k`` is the op's
        result-cache key (:meth:`OutputCache.key`) where it has one: it determines the signature (and
        more), so the timing is looked up by it without building the signature again."""
        op = self._ops.get(id(func)) or self._op(func)
        if op.view or _on_meta(out):  # a meta result (``zeros_like(cuda_t, device="meta")``): no kernel, no memory
            return
        self.track(out)
        if op.matmul:
            self.workspaces.ensure()
        elif op.reduce:
            self._reduce_scratch(func, args, kwargs, k)
        t = None
        if k is not None:
            if op.tf32:  # the global TF32 switch is part of their signature, not of ``k``
                k = (k, torch.backends.cuda.matmul.allow_tf32)
            t = self._key_timings.get(k)
        if t is None:
            tfunc, tkw = functional_form(func, kwargs) or (func, kwargs)  # out= overloads: the op's kernel
            sig = signature_of(tfunc, args, tkw)
            t = self._timings.get(sig)
            if t is None:
                timing = self.model.time_op(tfunc, args, tkw, out)
                shapes, dtype = shapes_text(args)
                key = self.rt.op_key(sig, timing.dur_us, timing.source)
                t = (timing.dur_us, timing.launch_us, timing.source, shapes, dtype, key, str(func))
                self._timings[sig] = t
                # a new shape: the real host builds its plan once
                self.rt.clock.host_us += timing.first_us * self.rt.host_cost_scale
            if k is not None:
                self._key_timings[k] = t
        dur, launch, source, shapes, dtype, key, name = t
        if dur == 0.0 and source == "none":
            self.rt.clock.host_us += launch * self.rt.host_cost_scale
            return
        self.rt.op_keys.append(key)
        self.rt.launch(name, shapes, dtype, dur, launch, source, stream)

    def _reduce_scratch(self, func, args: tuple, kwargs: dict, k: tuple | None) -> None:
        """The split reduction's global buffer and semaphores, allocated and given back around its launch
        (:mod:`interpose.reduce_scratch`)."""
        sizes = self._scratch.get(k) if k is not None else None
        if sizes is None:
            sizes = scratch_bytes(func, args, kwargs, self.rt.cfg.gpu.sm_count)
            if k is not None:
                self._scratch[k] = sizes
        if sizes[0]:
            alloc = self.rt.allocator
            buf, sem = alloc.malloc(sizes[0]), alloc.malloc(sizes[1])
            alloc.free(sem)
            alloc.free(buf)

    def model_launch_us(self) -> float:
        """The compute model's host launch cost per kernel (copies use it too)."""
        return getattr(self.model, "launch_overhead_us", 5.0)

    def _rng_inplace(self, func, args, kwargs):
        self.values.propagate(func, args, kwargs, args[0])
        self.account(func, args, kwargs, args[0])
        return args[0]
