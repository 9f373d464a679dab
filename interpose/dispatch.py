"""The dispatch-level router: fake GPU ops get simulated, CPU ops run for real.

:class:`SimDispatchMode` is a ``TorchDispatchMode`` that stays on the mode stack
while the script runs, so it sees every aten op after autograd and autocast.
Ops that touch a fake tensor or ask for ``device='cuda'`` run under the
:class:`SimFakeMode` (shapes, dtypes, strides exact; no data), get a duration
from the compute model, are queued on the current simulated stream and have
their new storages charged to the caching-allocator model. All other ops (data
loading, numpy glue) run for real on the CPU.

Values the host can know (integer and boolean data from the host, factories, and
everything computed only from known values) are kept beside the fake storages
(:mod:`interpose.values`), so ``.item()``, ``bool(t)``, D2H copies, ``nonzero``,
boolean indexing and other data-dependent sizes give the real answer. Unknown
values read as placeholders (0, 0.0, False, zero-filled CPU tensors; True for the
result of ``all()``) and count as a host-device sync; ``nonzero``/``masked_select``
of unknown data assume every element is selected (an upper bound on the output size).
"""

from __future__ import annotations

from typing import Any

import torch
from torch._ops import HigherOrderOperator
from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from interpose.allocator import SimulatedOOM
from interpose.cuda_api import oom_message
from interpose.fastpath import OutputCache
from interpose.runtime import RankRuntime
from profiles.compute import ComputeModel, signature_of

aten = torch.ops.aten
_UNSEEN = object()
_PRIM_DEVICE = torch.ops.prim.device.default
_COLLECTIVE_NAMESPACES = {"_c10d_functional", "_c10d_functional_autograd"}
_COMPOSITE_KEYSET = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)

HOST_LINK_GBPS = 50.0
"""Assumed host<->GPU copy bandwidth (PCIe Gen5 x16, pinned), GB/s."""
HOST_LINK_LATENCY_US = 8.0
"""Assumed fixed cost of one cudaMemcpy between host and device."""
CUBLAS_WORKSPACE_BYTES_SM90 = 32 << 20
"""cuBLAS workspace PyTorch allocates from the caching allocator per (handle, stream)
on sm90 parts (``CublasHandlePool.cpp``'s default ``:4096:8``); 4096*2+16*8 KiB on
others. Read from PyTorch's source, not measured here: one per stream for forward
(main thread) and one for backward (autograd's device thread)."""
CUBLAS_WORKSPACE_BYTES_OTHER = (4096 * 2 + 16 * 8) << 10

_BENIGN_ATTR = "_phantora_benign_value"
"""Attribute on a fake ``all``/``any`` result: the value ``.item()``/``bool()`` returns."""

_MATMUL_PACKETS = {
    aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten._scaled_mm, aten.addmm_, aten.baddbmm_, aten.addbmm,
}  # fmt: skip

_RNG_INPLACE = {
    aten.uniform_.default, aten.exponential_.default, aten.random_.default, getattr(aten.random_, "from"),
    aten.random_.to, aten.log_normal_.default, aten.cauchy_.default, aten.geometric_.default,
}  # fmt: skip


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
        return False  # torch.compile is a passthrough under the shim: skip the per-call wrapper

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # Ops with data-dependent output sizes, reached from inside other ops'
        # decompositions (boolean indexing -> nonzero): answer with the upper bound.
        h = _DYNAMIC_SHAPE.get(func)
        if h is not None:
            from interpose.runtime import current

            rt = current()
            rt.sync_stream()  # a real GPU copies the size back to the host here
            out = rt.values.dynamic(self, func, args, kwargs or {})
            return h(self, args, kwargs or {}) if out is None else out
        return super().__torch_dispatch__(func, types, args, kwargs)


def _fake_empty(mode: FakeTensorMode, shape: list[int], dtype: torch.dtype, like: torch.Tensor) -> FakeTensor:
    return FakeTensor(mode, torch.empty(shape, dtype=dtype, device="meta"), like.device)


def _nonzero_bound(mode, args, kwargs):
    x = args[0]
    return _fake_empty(mode, [x.numel(), x.dim()], torch.long, x)


def _unique2_bound(mode, args, kwargs):
    x = args[0]
    n = x.numel()
    inverse = kwargs.get("return_inverse", args[2] if len(args) > 2 else False)
    counts = kwargs.get("return_counts", args[3] if len(args) > 3 else False)
    return (
        _fake_empty(mode, [n], x.dtype, x),
        _fake_empty(mode, list(x.shape) if inverse else [0], torch.long, x),
        _fake_empty(mode, [n] if counts else [0], torch.long, x),
    )


_DYNAMIC_SHAPE = {
    aten.nonzero.default: _nonzero_bound,
    aten._unique2.default: _unique2_bound,
}


_FUNCTIONAL = torch.ops._c10d_functional
_CLONING_COLLECTIVES = {_FUNCTIONAL.all_reduce.default, _FUNCTIONAL.all_reduce_coalesced.default,
                        _FUNCTIONAL.broadcast.default}
"""Functional collectives whose composite kernel clones the input (below the shim, so the clone has
no known value) and then reduces the clone in place; the other functional collectives allocate an
output that the process group writes whole, which :mod:`interpose.distributed.symmetric` adopts."""


def _clone_values(func, args: tuple, out: Any) -> None:
    """Known inputs of a cloning functional collective give known outputs (symmetric ranks)."""
    from interpose.distributed import symmetric

    if func is _FUNCTIONAL.broadcast.default:
        symmetric.functional_result(out, args[0])
        return
    import torch.distributed.distributed_c10d as c10d

    n = c10d._resolve_process_group(args[2]).size()
    ins, outs = (args[0], out) if isinstance(out, list | tuple) else ([args[0]], [out])
    for i, o in zip(ins, outs, strict=False):
        symmetric.functional_result(o, i, str(args[1]).lower(), n)


def _is_cuda_device(d: Any) -> bool:
    if d is None:
        return False
    if isinstance(d, torch.device):
        return d.type == "cuda"
    return torch.device(d).type == "cuda"


_DENSITY: dict[tuple, float] = {}


def _flex_density(block_mask: Any) -> float:
    """Fraction of (q, kv) blocks a flex-attention block mask computes.

    The mask built by the script holds fake tensors (no values), so its ``mask_mod`` is evaluated
    again on the CPU at block granularity; cached per (mask function, lengths, block sizes). A
    ``mask_mod`` that reads tensors (document masks) cannot be re-evaluated: every block counts.
    """
    try:
        # BlockMask.as_tuple(): (kv_len, q_len, ...tensors..., q_block, kv_block, mask_mod)
        kv_len, q_len, bq, bkv, mask_mod = block_mask[0], block_mask[1], block_mask[-3], block_mask[-2], block_mask[-1]
        if not all(isinstance(x, int) for x in (kv_len, q_len, bq, bkv)):
            return 1.0
    except (TypeError, IndexError):
        return 1.0
    cells = getattr(mask_mod, "__closure__", None) or ()
    if any(isinstance(c.cell_contents, torch.Tensor) for c in cells if c.cell_contents is not None):
        return 1.0
    key = (getattr(mask_mod, "__code__", mask_mod), int(q_len), int(kv_len), int(bq), int(bkv))
    if key not in _DENSITY:
        from torch.nn.attention.flex_attention import create_block_mask

        try:
            real = create_block_mask(mask_mod, None, None, int(q_len), int(kv_len), device="cpu",
                                     BLOCK_SIZE=(int(bq), int(bkv)))
            _DENSITY[key] = max(0.0, 1.0 - float(real.sparsity()) / 100.0)
        except Exception:
            _DENSITY[key] = 1.0
    return _DENSITY[key]


_PLAIN_TYPES = frozenset({torch.Tensor, torch.nn.Parameter})
"""Tensor types the mode handles itself; any other subclass in ``types`` dispatches on its own."""


def _involves_fake(args: tuple, kwargs: dict) -> bool:
    for a in args:
        if isinstance(a, FakeTensor):
            return True
        if type(a) in (list, tuple) and a and isinstance(a[0], FakeTensor):
            return True
    if kwargs:
        d = kwargs.get("device")
        if d is not None and _is_cuda_device(d):
            return True
        for v in kwargs.values():
            if isinstance(v, FakeTensor):
                return True
    return False


_DEVICE_KERNELS: list = []


def register_device_kernels() -> None:
    """Give the CPU build's CUDA key a kernel for each aten op that has a composite kernel *and* a
    backend one (``silu_backward``, ``mish_backward``): the dispatcher then routes fake cuda tensors to
    this mode with the op whole, as on the CUDA build (where the GPU runs one kernel), instead of
    decomposing it above the mode. The kernel itself never runs: fake tensors meet the Python key
    first. Idempotent; nothing to do on the CUDA build."""
    if _DEVICE_KERNELS:
        return
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    lib = torch.library.Library("aten", "IMPL")
    _DEVICE_KERNELS.append(lib)
    for name in torch._C._dispatch_get_all_op_names():
        if (name.startswith("aten::") and has(name, "CompositeImplicitAutograd") and has(name, "CPU")
                and not has(name, "CUDA")):
            lib.impl(name.removeprefix("aten::"), _never_runs, "CUDA")


def _never_runs(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("phantora: a CUDA kernel was called on a real tensor (the shim registers these only "
                       "so that fake tensors keep fused ops whole)")


def _decomposes_on_device(name: str) -> bool:
    """An op the GPU runs as its composite pieces: a CompositeImplicitAutograd kernel and no kernel of
    a backend's own. Ops with both (``silu_backward``: one fused kernel on a GPU, recorded so on an
    H200) keep theirs; the CPU build has no CUDA kernels, so a CPU kernel stands for the device's."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    if not has(name, "CompositeImplicitAutograd"):
        return False
    return not any(has(name, k) for k in ("CUDA", "CPU", "CompositeExplicitAutograd"))


def _placeholder(dtype: torch.dtype) -> bool | int | float | complex:
    if dtype == torch.bool:
        return False
    if dtype.is_complex:
        return 0j
    if dtype.is_floating_point:
        return 0.0
    return 0


def _dtype_text(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _shapes_text(args: tuple) -> tuple[str, str]:
    shapes = []
    dtype = ""
    for a in args:
        if isinstance(a, torch.Tensor):
            shapes.append("x".join(map(str, a.shape)))
            dtype = dtype or str(a.dtype).removeprefix("torch.")
        elif type(a) in (list, tuple) and a and isinstance(a[0], torch.Tensor):
            shapes.append(f"[{len(a)}]" + "x".join(map(str, a[0].shape)))
            dtype = dtype or str(a[0].dtype).removeprefix("torch.")
    return ";".join(shapes), dtype


class SimDispatchMode(TorchDispatchMode):
    """Routes, times and records every GPU op of one rank (see module docstring)."""

    supports_higher_order_operators = True
    """Higher-order ops (flex attention) reach ``__torch_dispatch__``: see :meth:`_higher_order`."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # torch.compile is a passthrough under the shim: skip the per-call wrapper

    def __init__(self, rt: RankRuntime, fake_mode: FakeTensorMode, model: ComputeModel) -> None:
        super().__init__()
        register_device_kernels()
        self.rt = rt
        self.values = rt.values
        self.fake = fake_mode
        self.model = model
        self._timings: dict[Any, tuple[float, float, str, str, str, str]] = {}
        self._skip: dict[Any, bool] = {}
        self._implicit: dict[Any, bool] = {}
        self._dynamic: dict[Any, bool] = {}
        self._workspace_streams: set[tuple[int, bool]] = set()
        self._workspace_bytes = (
            CUBLAS_WORKSPACE_BYTES_SM90 if rt.cfg.gpu.capability[0] >= 9 else CUBLAS_WORKSPACE_BYTES_OTHER
        )
        self._workspace_blocks: list[Any] = []
        self.outputs = OutputCache(fake_mode)
        self.special = {
            aten._local_scalar_dense.default: self._item,
            aten.equal.default: self._equal,
            aten.nonzero.default: self._nonzero,
            aten.masked_select.default: self._masked_select,
            aten._fused_sdp_choice.default: self._sdp_choice,
            aten._grouped_mm.default: __import__("interpose.grouped_mm", fromlist=["handler"]).handler(self),
            aten._to_copy.default: self._to_copy,
            aten.copy_.default: self._copy_,
            aten._assert_async.default: self._noop,
            aten._assert_async.msg: self._noop,
            aten.record_stream.default: self._noop,
        }
        for f in _RNG_INPLACE:
            self.special[f] = self._rng_inplace
        for packet, value in ((aten.all, True), (aten.any, False)):
            for name in ("default", "dim", "dims"):
                self.special[getattr(packet, name)] = self._make_benign(value)

    # -- routing ------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is _PRIM_DEVICE:  # C++ asking a fake tensor for its device: very frequent
            self.rt.clock.pending_calls += 1
            a = args[0]
            return a.fake_device if isinstance(a, FakeTensor) else func(*args)
        if isinstance(func, HigherOrderOperator):
            return self._higher_order(func, types, args, kwargs or {})
        for t in types:
            if t not in _PLAIN_TYPES and not issubclass(t, FakeTensor):
                # a tensor subclass (DTensor, ...): let it unwrap itself. Returning NotImplemented keeps
                # this mode on the stack while the subclass runs, so its inner ops on the fake local
                # tensors are simulated and timed here; calling ``func`` from in here would run them
                # with the mode popped (not timed, and host-to-device copies fail).
                return NotImplemented
        if kwargs is None:
            kwargs = {}
        if not _involves_fake(args, kwargs):
            if kwargs.get("pin_memory"):
                kwargs = dict(kwargs, pin_memory=False)  # pinned host memory needs a driver
            return func(*args, **kwargs)
        clock = self.rt.clock
        clock.enter()
        try:
            implicit = self._implicit.get(func)
            if implicit is None:
                implicit = self._implicit[func] = _decomposes_on_device(func.name())
            if implicit:
                # CompositeImplicitAutograd ops reach the mode only where autograd's keys
                # are skipped (``inference_mode``: ``to.dtype_layout``, ...): decompose them,
                # so their pieces (``_to_copy``) are routed like everywhere else.
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            h = self.special.get(func)
            if h is None and func.namespace in _COLLECTIVE_NAMESPACES:
                h = self._collective
            try:
                return self._simulate(func, args, kwargs) if h is None else h(func, args, kwargs)
            except SimulatedOOM as e:
                raise torch.cuda.OutOfMemoryError(
                    oom_message(
                        e.request_bytes, e.allocated_bytes, e.reserved_bytes, e.limit_bytes, self.rt.device
                    )
                ) from None
        finally:
            clock.leave()

    def _simulate(self, func, args: tuple, kwargs: dict) -> Any:
        """Run one GPU op on fake tensors (result cache first), keep known values true, then
        account for it."""
        k = self.outputs.key(func, args, kwargs)
        if k is not None:
            spec = self.outputs.entries.get(k, _UNSEEN)
            if spec is not _UNSEEN and spec is not None:
                out = self.outputs.build(spec, args)
                self.values.propagate(func, args, kwargs, out)
                self.account(func, args, kwargs, out)
                return out
        dynamic = self._dynamic.get(func)
        if dynamic is None:
            dynamic = self._dynamic[func] = torch.Tag.dynamic_output_shape in func.tags
        if dynamic:
            out = self.values.dynamic(self.fake, func, args, kwargs)
            if out is not None:  # known inputs: the real output sizes
                self.rt.sync_stream()  # a real GPU copies the size back to the host here
                self.account(func, args, kwargs, out)
                return out
        try:
            with self.fake:
                out = func(*args, **kwargs)
        except DynamicOutputShapeException:
            raise RuntimeError(
                f"phantora: the output size of {func} depends on values the simulator does not know "
                "(computed from fake floating-point data); see the README, 'Known values'"
            ) from None
        if k is not None and k not in self.outputs.entries:
            self.outputs.learn(k, args, out)
        self.values.propagate(func, args, kwargs, out)
        self.account(func, args, kwargs, out)
        return out

    def calibrate(self, n: int = 300) -> float:
        """Measure one dispatch round trip (C++ -> this mode -> back), in microseconds.

        That cost is paid outside ``clock.enter``/``leave`` for every fake op, so
        measured host time would otherwise charge it to the script.
        """
        from interpose.clock import cpu_time

        with self.fake:
            t = torch.empty(1, device="cuda")
        best = float("inf")
        with self:
            for _ in range(5):
                t0 = cpu_time()
                for _ in range(n):
                    _PRIM_DEVICE(t)
                best = min(best, (cpu_time() - t0) / n * 1e6)
        self.rt.clock.pending_calls = 0
        return best

    def calibrate_entry(self, n: int = 200, reps: int = 5) -> float:
        """Host microseconds a tensor call spends outside the shim before and after it
        (beyond :meth:`calibrate`'s round trip), measured on a cached view op: the
        loop has no script work, so whatever measured mode would bank is leakage.
        The minimum over ``reps`` keeps noise from other processes out (it
        under-subtracts rather than eats real script time). Call with the mode active."""
        clock = self.rt.clock
        with self.fake:
            x = torch.empty(64, 64, device="cuda")
        x.view(-1)  # learn the fastpath entry
        saved_host, saved_entry = clock.host_us, clock.per_entry_us
        clock.per_entry_us = 0.0
        best = float("inf")
        for _ in range(reps):
            clock.enter()
            clock.leave()
            h0 = clock.host_us
            for _ in range(n):
                x.view(-1)
            clock.enter()
            clock.leave()
            best = min(best, (clock.host_us - h0) / n)
        clock.host_us, clock.per_entry_us = saved_host, saved_entry
        return max(best, 0.0)

    # -- accounting -----------------------------------------------------------------
    def track(self, out: Any) -> None:
        if isinstance(out, FakeTensor):
            st = out.untyped_storage()
            self.rt.track_storage(st, st.nbytes())
        elif isinstance(out, list | tuple):
            for o in out:
                if isinstance(o, FakeTensor | list | tuple):
                    self.track(o)

    def account(self, func, args: tuple, kwargs: dict, out: Any, stream=None) -> None:
        """Charge memory for new outputs and queue the op's kernel on the stream."""
        skip = self._skip.get(func)
        if skip is None:
            skip = self._skip[func] = bool(func.is_view)
        if skip:
            return
        self.track(out)
        if func.overloadpacket in _MATMUL_PACKETS:
            self._ensure_workspace()
        sig = signature_of(func, args, kwargs)
        t = self._timings.get(sig)
        if t is None:
            timing = self.model.time_op(func, args, kwargs, out)
            shapes, dtype = _shapes_text(args)
            key = self.rt.op_key(sig, timing.dur_us, timing.source)
            t = self._timings[sig] = (timing.dur_us, timing.launch_us, timing.source, shapes, dtype, key)
        dur, launch, source, shapes, dtype, key = t
        if dur == 0.0 and source == "none":
            self.rt.clock.host_us += launch
            return
        self.rt.op_keys.append(key)
        self.rt.launch(str(func), shapes, dtype, dur, launch, source, stream)

    def _ensure_workspace(self) -> None:
        # PyTorch keys cuBLAS workspaces by (handle, stream) and handles by thread; on a
        # GPU, backward runs on autograd's device thread, so it gets a second workspace.
        key = (self.rt.current_stream.id, torch._C._current_graph_task_id() != -1)
        if key not in self._workspace_streams:
            self._workspace_streams.add(key)
            self._workspace_blocks.append(self.rt.allocator.malloc(self._workspace_bytes))

    def _copy_kernel(self, name: str, nbytes: int, shapes: str, dtype: str, blocking: bool, sig=None) -> None:
        dur = HOST_LINK_LATENCY_US + nbytes / (HOST_LINK_GBPS * 1e3)
        if sig is not None:  # the op as the script called it (a kernel's own copies have none)
            self.rt.op_keys.append(self.rt.op_key(sig, dur, "copy"))
        end = self.rt.launch(name, shapes, dtype, dur, self.model_launch_us(), "copy")
        if blocking:
            self.rt.wait_for(end)

    def model_launch_us(self) -> float:
        return getattr(self.model, "launch_overhead_us", 5.0)

    # -- special ops ----------------------------------------------------------------
    def _item(self, func, args, kwargs):
        x = args[0]
        self._copy_kernel("aten._local_scalar_dense.default(d2h)", x.element_size(), "", _dtype_text(x), True,
                          signature_of(func, args, kwargs))
        real = self.values.get(x)
        if real is not None:
            return real.item()
        v = getattr(x, _BENIGN_ATTR, None)
        return _placeholder(x.dtype) if v is None else v

    def _make_benign(self, value: bool):
        """``all`` reads True and ``any`` False when the host asks for the value: the
        answer that says "nothing unusual" to checks scripts make (``isfinite(x).all()``,
        ``isnan(x).any()``, Hugging Face's all-ones padding-mask test that lets SDPA run
        causal without a mask). Other reductions read as 0 / False."""

        def handler(func, args, kwargs):
            out = self._simulate(func, args, kwargs)
            if isinstance(out, FakeTensor):
                setattr(out, _BENIGN_ATTR, value)
            return out

        return handler

    def _equal(self, func, args, kwargs):
        self.rt.sync_stream()
        a, b = self.values.get(args[0]), self.values.get(args[1])
        return True if a is None or b is None else torch.equal(a, b)

    def _collective(self, func, args, kwargs):
        """Functional collectives (DTensor, FSDP2): run the real composite kernel, which
        clones/allocates the output and calls the process group (the simulated one, whose
        work goes onto the runtime's streams); FakeTensorMode would only run the meta
        kernel and the collective would never be issued."""
        with self.fake:  # the kernel's own allocations (clone, empty) must be fake too
            out = func.redispatch(_COMPOSITE_KEYSET, *args, **kwargs)
        self.track(out)
        if func in _CLONING_COLLECTIVES and self.values:
            _clone_values(func, args, out)
        return out

    def _noop(self, func, args, kwargs):
        return None

    def _rng_inplace(self, func, args, kwargs):
        self.values.propagate(func, args, kwargs, args[0])
        self.account(func, args, kwargs, args[0])
        return args[0]

    def _selected(self, func, args, kwargs, shape: list[int], dtype: torch.dtype, device):
        self.rt.sync_stream()  # the output size is data-dependent: a real GPU syncs here too
        with self.fake:
            out = aten.empty.memory_format(shape, dtype=dtype, device=device)
        self.account(func, args, kwargs, out)
        return out

    def _nonzero(self, func, args, kwargs):
        x = args[0]
        out = self.values.dynamic(self.fake, func, args, kwargs)
        if out is not None:
            return self._known_selected(func, args, kwargs, out)
        return self._selected(func, args, kwargs, [x.numel(), x.dim()], torch.long, x.device)

    def _known_selected(self, func, args, kwargs, out):
        self.rt.sync_stream()
        self.account(func, args, kwargs, out)
        return out

    def _masked_select(self, func, args, kwargs):
        x, mask = args[0], args[1]
        out = self.values.dynamic(self.fake, func, args, kwargs)
        if out is not None:
            return self._known_selected(func, args, kwargs, out)
        n = torch.broadcast_shapes(x.shape, mask.shape).numel()
        return self._selected(func, args, kwargs, [n], x.dtype, x.device)

    def _higher_order(self, func, types, args: tuple, kwargs: dict) -> Any:
        """Flex attention (``flex_attention`` / ``flex_attention_backward``) runs under FakeTensorMode's
        own rule and is timed as flash attention on the same q/k/v, scaled by the block mask's
        density (a fused Triton kernel of the same algorithm; its backward does 2.5x the forward's
        FLOPs, as FlashAttention-2's). Other higher-order ops run on the fake tensors untimed."""
        if not _involves_fake(args, kwargs):
            return NotImplemented
        clock = self.rt.clock
        clock.enter()
        try:
            impl = func.python_key_table.get(FakeTensorMode)
            if impl is None:
                return NotImplemented
            out = impl(self.fake, *args, **kwargs)  # FakeTensorMode's rule (keyed by exact class)
            self.track(out)
            name = func.name()
            if name in ("flex_attention", "flex_attention_backward"):
                q, k, v = args[0], args[1], args[2]
                density = _flex_density(args[4] if name == "flex_attention" else args[9])
                flash = aten._scaled_dot_product_flash_attention.default
                t = self.model.time_op(flash, (q, k, v), {}, None)
                dur = t.dur_us * density * (2.5 if name == "flex_attention_backward" else 1.0)
                shapes, dtype = _shapes_text((q, k, v))
                self.rt.launch(f"higher_order.{name}", shapes, dtype, dur, t.launch_us, t.source)
            return out
        finally:
            clock.leave()

    def _sdp_choice(self, func, args, kwargs):
        from interpose.sdpa import choose_backend

        return choose_backend(*args, **kwargs)

    def _to_copy(self, func, args, kwargs):
        x = args[0]
        dev = kwargs.get("device")
        src_fake = isinstance(x, FakeTensor)
        blocking = not kwargs.get("non_blocking", False)
        if src_fake and dev is not None and not _is_cuda_device(dev):  # D2H
            real = self.values.get(x)
            out_dtype = kwargs.get("dtype") or x.dtype
            if real is not None:
                out = real.to(dtype=out_dtype, copy=True)
            else:
                out = torch.zeros(x.shape, dtype=out_dtype, device=dev)
            shapes, dtype = _shapes_text(args)
            self._copy_kernel(
                "aten._to_copy.default(d2h)", x.numel() * x.element_size(), shapes, dtype, blocking,
                signature_of(func, args, kwargs),
            )
            return out
        host = x
        if not src_fake:
            # H2D: copy from a metadata-only stand-in, so FakeTensorMode's converter keeps
            # no weak reference to the CPU tensor (``swap_tensors`` refuses weakly-referenced
            # tensors, and ``Module._apply`` swaps the cuda copy into the old Parameter).
            x = FakeTensor(self.fake, torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta"), x.device)
            args = (x, *args[1:])
        with self.fake:
            out = func(*args, **kwargs)
        if not src_fake:  # H2D
            if self.values.keepable(out, from_host=True):
                self.values.put(out, host.to(out.dtype), from_host=True)
            self.track(out)
            shapes, dtype = _shapes_text(args)
            self._copy_kernel(
                "aten._to_copy.default(h2d)", x.numel() * x.element_size(), shapes, dtype, blocking,
                signature_of(func, args, kwargs),
            )
            return out
        self.values.propagate(func, args, kwargs, out)
        self.account(func, args, kwargs, out)
        return out

    def _copy_(self, func, args, kwargs):
        dst, src = args[0], args[1]
        blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
        dst_fake, src_fake = isinstance(dst, FakeTensor), isinstance(src, FakeTensor)
        if src_fake and not dst_fake and dst.device.type == "cpu":  # D2H into a real CPU tensor
            real = self.values.get(src)
            if real is not None:
                dst.copy_(real)
            shapes, dtype = _shapes_text(args)
            self._copy_kernel(
                "aten.copy_.default(d2h)", src.numel() * src.element_size(), shapes, dtype, blocking,
                signature_of(func, args, kwargs),
            )
            return dst
        with self.fake:
            out = func(*args, **kwargs)
        if dst_fake and not src_fake and src.device.type == "cpu":  # H2D
            self._known_h2d(dst, src)
            shapes, dtype = _shapes_text(args)
            self._copy_kernel(
                "aten.copy_.default(h2d)", src.numel() * src.element_size(), shapes, dtype, blocking,
                signature_of(func, args, kwargs),
            )
            return out
        self.values.propagate(func, args, kwargs, out)
        self.account(func, args, kwargs, out)
        return out

    def _known_h2d(self, dst: FakeTensor, src: torch.Tensor) -> None:
        """Host data copied into a fake tensor: into its shadow if it has one; a shadow for a
        destination it fills completely; otherwise its old known values are gone."""
        v = self.values
        shadow = v.get(dst)
        if shadow is None and dst.numel() * dst.element_size() == dst.untyped_storage().nbytes():
            if v.keepable(dst, from_host=True):
                v.put(dst, src.expand(dst.shape), from_host=True)
            return
        if shadow is None or not v.keepable(dst, from_host=True):
            v.drop(dst)
        else:
            shadow.copy_(src)
