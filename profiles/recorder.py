"""Record kernel timings of a real run: a dispatch mode that times every distinct op signature.

:class:`KernelRecorder` sits below autograd and autocast (a
``TorchDispatchMode``), so it sees exactly the aten ops that launch kernels —
the same ops, with the same :func:`~profiles.compute.signature_of` keys, that
the simulator's shim sees on fake tensors. For each op it

1. runs the op normally, so the script proceeds unchanged;
2. the first time a signature is seen, re-runs it ``warmup`` times and then
   ``repeats`` times between CUDA events on the same inputs (in-place and
   ``out=`` arguments are cloned first so the script's state is untouched) and
   keeps the median, p10 and p90. A ``torch.cuda._sleep`` kernel queued ahead
   keeps the GPU busy while the timed launches are queued, so the events
   measure GPU time, not launch gaps;
3. records host time: ``launch_us`` is the dispatch call's own host time (median
   over the timed calls, queued behind the busy GPU as in a running program; profiles
   recorded before 2026-12-02, header without ``extra.launch_method``, hold the median of
   the warm-up calls right after a synchronize, first-call costs included), ``first_call_us`` the
   first call's host time (an op that makes the host wait for the GPU, ``.item()`` or a blocking
   D2H copy, is called after a synchronize so the wait is left out; since 2026-12-02), ``host_gap_us`` the median time the script
   spent between the previous kernel-launching op and this one (its Python work,
   views included), with the mode's own per-op cost (calibrated at start)
   subtracted and waits longer than ``max_gap_us`` (data loading, explicit
   synchronisation) left out.

:func:`time_call` and :func:`profile_specs` are also what ``--kernels-only``
and the replay model's on-demand profiling use.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode

from profiles.compute import signature_of
from profiles.cost import tensors_of
from profiles.roofline import is_kernel_free
from profiles.store import ProfileEntry, ProfileHeader
from profiles.timeline import SYNC_OPS
from profiles.timing import _cuda_sync, make_entry, time_call

_SKIP_NAMESPACES = frozenset({"c10d", "_c10d_functional", "c10d_functional", "_c10d_functional_autograd", "prim"})
"""Collectives are the network simulator's business; ``prim`` ops (``prim.device``) launch nothing.
Custom ops of other namespaces (FSDP2's ``fsdp.all_gather_copy_in``/``chunk_cat``/``split_with_sizes_copy``) are timed."""


_ALSO_WAITS = frozenset({"aten.equal.default", "aten._unique2.default", "aten.unique_dim.default", "aten.is_nonzero.default"})
"""Value-reading ops beyond :data:`profiles.timeline.SYNC_OPS` (whose output size is known)."""


@dataclass
class _Seen:
    entry: ProfileEntry | None
    gaps_us: list[float] = field(default_factory=list)
    calls: int = 0


class KernelRecorder(TorchDispatchMode):
    """Times every distinct op signature that launches a kernel on ``device_type`` (see module doc)."""

    def __init__(
        self,
        *,
        device_type: str = "cuda",
        repeats: int = 7,
        warmup: int = 2,
        max_gap_us: float = 2000.0,
    ) -> None:
        super().__init__()
        self.device_type = device_type
        self.repeats = repeats
        self.warmup = warmup
        self.max_gap_us = max_gap_us
        self.seen: dict[str, _Seen] = {}
        self.trace: list[str] = []
        """Keys of every kernel-launching op in call order (for :func:`profiles.timeline.replay_trace`)."""
        self.failures: dict[str, str] = {}
        self.mode_overhead_us = 0.0
        self.launch_offset_us = 0.0
        self._t_exit = 0.0
        self._pending_us = 0.0
        self._calibrating = False
        self._composite: dict = {}
        self._depth = 0

    # -- the mode ------------------------------------------------------------------------------
    def __enter__(self):
        self._depth += 1  # re-entered to decompose composite ops: patch once
        if self._depth > 1:
            return super().__enter__()
        # The script's own torch.cuda.synchronize() waits are GPU time, not host work: leave them out of gaps.
        self._real_sync = torch.cuda.synchronize

        def sync(device=None) -> None:
            t0 = time.perf_counter()
            self._real_sync(device)
            self._pending_us -= (time.perf_counter() - t0) * 1e6

        torch.cuda.synchronize = sync
        # torch.tensor(data, device="cuda") copies its data to the GPU with every mode off unless only
        # CPU tensors are lifted; lifting them (as the shim does) shows that H2D copy as a _to_copy op,
        # so the trace holds every copy the simulator issues (same result on the GPU)
        self._lift_cpu_only = torch._C._only_lift_cpu_tensors()
        torch._C._set_only_lift_cpu_tensors(True)
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            torch.cuda.synchronize = self._real_sync
            torch._C._set_only_lift_cpu_tensors(self._lift_cpu_only)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(t is not torch.Tensor and t is not torch.nn.Parameter for t in types):
            if any(issubclass(t, FakeTensor) for t in types):
                return func(*args, **(kwargs or {}))  # shape propagation (DTensor's): no kernel
            # a tensor subclass (DTensor, ...): let it unwrap itself with this mode still on the
            # stack, so the kernels it launches on its local tensors are what gets recorded
            return NotImplemented
        kwargs = kwargs or {}
        if self._is_composite(func):
            # CompositeImplicitAutograd ops reach a mode only where autograd's keys are skipped
            # (inference_mode: linear, to.dtype_layout ...): decompose them as the shim does, so the
            # trace holds the kernels' ops (addmm, _to_copy), keyed as the simulator looks them up
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        if self._t_exit and self._waits_for_gpu(func, args, kwargs):
            # the op would wait for the GPU's queue inside its call: wait first, so its call time
            # (first_call_us) is host work only; the wait is neither the call nor the script's gap
            t_wait = time.perf_counter()
            self._real_sync()
            self._t_exit += time.perf_counter() - t_wait
        t_enter = time.perf_counter()
        out = func(*args, **kwargs)
        t_done = time.perf_counter()
        if self._t_exit:
            self._pending_us += (t_enter - self._t_exit) * 1e6 - self.mode_overhead_us
        if self._calibrating or not self._launches_kernel(func, args, kwargs, out):
            self._pending_us += (t_done - t_enter) * 1e6
            self._t_exit = time.perf_counter()
            return out
        gap = max(0.0, self._pending_us)
        self._pending_us = 0.0
        self._observe(func, args, kwargs, out, gap, (t_done - t_enter) * 1e6)
        self._t_exit = time.perf_counter()
        return out

    def _is_composite(self, func) -> bool:
        """Whether the device runs ``func`` as its CompositeImplicitAutograd decomposition (no kernel of its own)."""
        c = self._composite.get(func)
        if c is None:
            has = torch._C._dispatch_has_kernel_for_dispatch_key
            backend = "CUDA" if self.device_type == "cuda" else self.device_type.upper()
            name = func.name()
            c = self._composite[func] = has(name, "CompositeImplicitAutograd") and not has(name, backend)
        return c

    def _waits_for_gpu(self, func, args, kwargs) -> bool:
        """Whether ``func`` makes the host wait for the GPU: a value read (``.item()``, data-dependent
        output sizes) or a blocking device-to-host copy."""
        if self.device_type != "cuda":
            return False
        name = str(func)
        if name in SYNC_OPS or name in _ALSO_WAITS:
            return True
        if func is torch.ops.aten._to_copy.default and not kwargs.get("non_blocking", False):
            src = args[0] if args else None
            dev = kwargs.get("device")
            return isinstance(src, torch.Tensor) and src.device.type == "cuda" and dev is not None and torch.device(dev).type == "cpu"
        return False

    def _launches_kernel(self, func, args, kwargs, out) -> bool:
        if func.namespace in _SKIP_NAMESPACES or is_kernel_free(func):
            return False
        ts = tensors_of((args, kwargs)) + tensors_of(out)
        return any(t.device.type == self.device_type for t in ts)

    def _observe(self, func, args, kwargs, out, gap_us: float, call_us: float) -> None:
        sig = signature_of(func, args, kwargs)
        key = sig.key()
        seen = self.seen.get(key)
        if seen is None:
            entry = None
            if key not in self.failures:
                try:
                    timing = time_call(func, args, kwargs, repeats=self.repeats, warmup=self.warmup)
                    entry = make_entry(sig, func, args, kwargs, out, timing)
                    entry.first_call_us = round(call_us, 3)
                except Exception as e:  # an op that cannot be re-run on these inputs: report, don't break the script
                    self.failures[key] = f"{type(e).__name__}: {e}"[:300]
            seen = self.seen[key] = _Seen(entry)
        seen.calls += 1
        self.trace.append(key)
        if gap_us <= self.max_gap_us:
            seen.gaps_us.append(gap_us)

    # -- results -------------------------------------------------------------------------------
    def calibrate(self, n: int = 300) -> float:
        """Measure the mode's own host cost per dispatched op (subtracted from ``host_gap_us``)."""
        x = torch.ones(4, device=self.device_type)
        view = torch.ops.aten.view.default

        def loop() -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                view(x, [4])
            return (time.perf_counter() - t0) * 1e6 / n

        bare = min(loop() for _ in range(3))
        self._calibrating = True
        try:
            with self:
                moded = min(loop() for _ in range(3))
        finally:
            self._calibrating = False
            self._t_exit = 0.0
            self._pending_us = 0.0
        self.mode_overhead_us = max(0.0, moded - bare)
        self.launch_offset_us = self._launch_offset(n)
        return self.mode_overhead_us

    def _launch_offset(self, n: int) -> float:
        """How much more an op costs called as the recorder calls it (an ``OpOverload`` from Python,
        inside the mode) than as a program calls it (``torch.add``: the fast argument parser).
        ``launch_us`` minus this is the per-op host cost a running eager program pays."""
        a = torch.ones(64, device=self.device_type)
        add = torch.ops.aten.add.Tensor

        def loop(f) -> float:
            for _ in range(50):
                f()
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            return (time.perf_counter() - t0) * 1e6 / n

        overload = min(loop(lambda: add(a, a)) for _ in range(3))
        eager = min(loop(lambda: torch.add(a, a)) for _ in range(3))
        if self.device_type == "cuda":
            _cuda_sync()
        return max(0.0, overload - eager)

    def entries(self) -> list[ProfileEntry]:
        out = []
        for seen in self.seen.values():
            if seen.entry is None:
                continue
            seen.entry.calls = seen.calls
            seen.entry.host_gap_us = statistics.median(seen.gaps_us) if seen.gaps_us else None
            out.append(seen.entry)
        return out


def profile_specs(
    specs: Iterable[dict[str, Any]], *, device: str = "cuda", repeats: int = 7, warmup: int = 2
) -> tuple[list[ProfileEntry], dict[str, str]]:
    """Time missing-signature specs (``--kernels-only``) on random inputs; returns entries and failures.

    Each entry keeps the key the simulator computed (from the spec), so it
    matches at replay even where the rebuilt call would key slightly differently.
    """
    from profiles.argspec import materialize

    entries: list[ProfileEntry] = []
    failures: dict[str, str] = {}
    for spec in specs:
        key = spec.get("key", "?")
        try:
            func, args, kwargs = materialize(spec, device)
            out = func(*args, **kwargs)
            timing = time_call(func, args, kwargs, repeats=repeats, warmup=warmup)
            entry = make_entry(signature_of(func, args, kwargs), func, args, kwargs, out, timing)
            entry.key = key
            entries.append(entry)
        except Exception as e:
            failures[key] = f"{type(e).__name__}: {e}"[:300]
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
    return entries, failures


def _smi(query: str) -> str:
    try:
        r = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def environment_header(gpu: str, source: str) -> ProfileHeader:
    """Header for a profile measured here: GPU, torch/CUDA/driver versions, clocks, date."""
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    clocks: dict[str, Any] = {}
    smi = _smi("clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem")
    if smi:
        keys = ("sm_mhz", "mem_mhz", "max_sm_mhz", "max_mem_mhz")
        clocks = {k: v.strip() for k, v in zip(keys, smi.split(","), strict=False)}
    return ProfileHeader(
        gpu=gpu,
        gpu_name=name,
        torch=torch.__version__,
        cuda=str(torch.version.cuda or ""),
        driver=_smi("driver_version"),
        clocks=clocks,
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        source=source,
    )
