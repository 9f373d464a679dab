"""The compute-time model interface: how long one GPU op takes on a simulated GPU.

interpose calls :meth:`ComputeModel.time_op` for every op that reaches the fake
GPU; the model answers with an :class:`OpTiming` that says where the number came
from (``profile`` = a measured entry, ``roofline`` = the analytic model), so the
run summary can report coverage honestly. Models plug into ``COMPUTE_MODELS``.

The same :func:`signature_of` keys both recording (``phantora profile``) and
replay, so a measured op is found again exactly.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from common.registry import Registry
from profiles.gpus import GpuSpec


@dataclass(frozen=True, slots=True)
class OpSignature:
    """What determines an op's kernel time: op name, tensor shapes/dtypes/contiguity, scalar flags."""

    op: str
    """Overload name, e.g. ``aten.mm.default``."""
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    contiguous: tuple[bool, ...]
    flags: tuple[tuple[str, str], ...] = ()
    """Non-tensor arguments that change the kernel (``is_causal``, ``dim`` ...), as text."""

    def key(self) -> str:
        """Stable text key used by profile files and caches.

        Ops over long tensor lists (foreach / fused optimizers take every
        parameter) would make keys of many kilobytes, so past
        ``LONG_LIST_TENSORS`` tensors the shapes/dtypes/contiguity collapse into
        a count and a SHA-1 prefix of their full text.
        """
        shp = ";".join("x".join(map(str, s)) for s in self.shapes)
        dts = ",".join(self.dtypes)
        cont = "".join("c" if c else "n" for c in self.contiguous)
        if len(self.shapes) > LONG_LIST_TENSORS:
            digest = hashlib.sha1(f"{shp}|{dts}|{cont}".encode()).hexdigest()[:16]
            shp, dts, cont = f"#{len(self.shapes)}", ",".join(sorted(set(self.dtypes))), f"h{digest}"
        flg = ",".join(f"{k}={v}" for k, v in self.flags)
        return f"{self.op}|{shp}|{dts}|{cont}|{flg}"


@dataclass(frozen=True, slots=True)
class OpTiming:
    """One op's simulated cost."""

    dur_us: float
    """GPU time of the kernel(s), microseconds; 0 for ops that launch no kernel (views)."""
    source: str
    """``profile`` (measured), ``roofline`` (analytic) or ``none`` (no kernel)."""
    launch_us: float = 0.0
    """Host time to launch it (CPU-side overhead in the framework + driver)."""
    first_us: float = 0.0
    """Extra host time of the first call of this signature in a process: plans built per shape
    (cuDNN attention/conv graphs, cuBLASLt heuristics), lazily loaded kernels."""


LONG_LIST_TENSORS = 8
"""Signatures with more tensors than this hash their shapes in :meth:`OpSignature.key`."""


def _scalar_text(x: Any) -> str | None:
    """Text of a scalar argument that belongs in the key, or ``None`` to leave it out.

    Ints, bools, strings, dtypes and memory formats pick kernels (``dim``,
    ``keepdim``, ``is_causal``, ``dtype``). Floats are left out: they are
    hyper-parameters (lr, eps, weight decay, dropout p, scale, alpha) that do not
    change kernel time, and lr changes every step under a scheduler.
    """
    if isinstance(x, float):
        return None
    if isinstance(x, bool | int | str | torch.dtype | torch.memory_format | torch.layout):
        return str(x)
    if isinstance(x, list | tuple) and x and all(isinstance(v, int | bool) for v in x):
        return str(list(x))
    return None


def _dtype_text(t: torch.Tensor) -> str:
    """dtype name, with ``@cpu`` for host tensors so that H2D copies differ from on-device ones.

    0-dim tensors carry no suffix: a CUDA kernel takes them as scalars wherever
    they live (e.g. the philox seed/offset of efficient attention are CPU
    tensors on a real GPU but fake CUDA tensors in the simulator).
    """
    name = str(t.dtype).removeprefix("torch.")
    return name if t.device.type == "cuda" or t.dim() == 0 else f"{name}@{t.device.type}"


_TF32_OPS = {
    torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm, torch.ops.aten.baddbmm, torch.ops.aten.addbmm,
}  # fmt: skip
"""Ops whose fp32 kernels use TF32 when ``torch.backends.cuda.matmul.allow_tf32`` is set (a key flag)."""


def signature_of(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> OpSignature:
    """Signature of a call as the dispatcher sees it (tensors by shape/dtype, scalars by value)."""
    shapes: list[tuple[int, ...]] = []
    dtypes: list[str] = []
    contiguous: list[bool] = []
    flags: list[tuple[str, str]] = []
    schema_args = func._schema.arguments
    for i, a in enumerate(args):
        _collect(a, shapes, dtypes, contiguous, flags, schema_args[i].name if i < len(schema_args) else str(i))
    for k, v in kwargs.items():
        _collect(v, shapes, dtypes, contiguous, flags, k)
    if "float32" in dtypes and func.overloadpacket in _TF32_OPS and torch.backends.cuda.matmul.allow_tf32:
        flags.append(("tf32", "True"))  # global switch that picks TF32 tensor-core kernels (8x faster)
    return OpSignature(str(func), tuple(shapes), tuple(dtypes), tuple(contiguous), tuple(flags))


def _collect(a, shapes, dtypes, contiguous, flags, name: str) -> None:
    if isinstance(a, torch.Tensor):
        shapes.append(tuple(a.shape))
        dtypes.append(_dtype_text(a))
        contiguous.append(a.is_contiguous())
        return
    if isinstance(a, list | tuple) and a and any(isinstance(t, torch.Tensor) for t in a):
        for t in tree_flatten(a)[0]:
            _collect(t, shapes, dtypes, contiguous, flags, name)
        return
    text = _scalar_text(a)
    if text is not None:
        flags.append((name, text))


class ComputeModel(ABC):
    """Base class of compute-time models. Subclasses implement :meth:`time_signature`.

    ``time_op`` caches by signature key: a training loop repeats the same few
    hundred signatures, so the per-op cost after the first iteration is a dict lookup.
    """

    def __init__(self, gpu: GpuSpec) -> None:
        self.gpu = gpu
        self._cache: dict[OpSignature, OpTiming] = {}

    def time_op(self, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> OpTiming:
        sig = signature_of(func, args, kwargs)
        hit = self._cache.get(sig)
        if hit is None:
            hit = self._cache[sig] = self.time_signature(sig, func, args, kwargs, out)
        return hit

    def measure_script_time(self) -> None:
        """The script's host time is measured on this machine (``--host-time measured``): drop any
        replayed stand-in for it. Models that replay no script time have nothing to drop."""
        return None

    @abstractmethod
    def time_signature(
        self, sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any
    ) -> OpTiming:
        """Time one op the first time its signature is seen."""


COMPUTE_MODELS: Registry[Callable[..., ComputeModel]] = Registry("compute model")


def build_compute_model(name: str, gpu: GpuSpec, **options: Any) -> ComputeModel:
    """Make the model a scenario names (``compute.model``), with its options."""
    return COMPUTE_MODELS.get(name)(gpu, **options)
