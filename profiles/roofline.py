"""Roofline compute-time model: time = max(FLOPs / peak, bytes / bandwidth) + fixed kernel cost.

FLOPs come from ``torch.utils.flop_counter``'s formula registry (matmul,
convolution, attention); every other op is memory-bound on the bytes of its
tensor inputs and outputs. Efficiencies below 1 account for what real kernels
reach; the profile replay model replaces these guesses with measurements.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from profiles.compute import COMPUTE_MODELS, ComputeModel, OpSignature, OpTiming
from profiles.gpus import GpuSpec

# Ops that only make metadata (views, allocations without initialisation): no kernel.
_NO_KERNEL_PACKETS = {
    "aten.empty",
    "aten.empty_strided",
    "aten.empty_like",
    "aten.new_empty",
    "aten.new_empty_strided",
    "aten.detach",
    "aten.lift_fresh",
    "aten.alias",
    "aten._unsafe_view",
    "aten.set_",
    "aten.resize_",
    "aten.record_stream",
}


def _tensors(x: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(x)[0] if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def is_kernel_free(func: torch._ops.OpOverload) -> bool:
    """True for view and allocation-only ops, which launch no GPU kernel."""
    return func.is_view or str(func.overloadpacket) in _NO_KERNEL_PACKETS


@COMPUTE_MODELS.register("roofline")
class RooflineModel(ComputeModel):
    """Analytic model with per-GPU peaks from :mod:`profiles.gpus`."""

    def __init__(
        self,
        gpu: GpuSpec,
        *,
        matmul_efficiency: float = 0.7,
        memory_efficiency: float = 0.8,
        kernel_overhead_us: float = 3.0,
        launch_overhead_us: float = 6.0,
    ) -> None:
        super().__init__(gpu)
        self.matmul_efficiency = matmul_efficiency
        self.memory_efficiency = memory_efficiency
        self.kernel_overhead_us = kernel_overhead_us
        self.launch_overhead_us = launch_overhead_us

    def flops(self, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> float:
        f = flop_registry.get(func.overloadpacket)
        if f is None:
            return 0.0
        try:
            return float(f(*args, **kwargs, out_val=out))
        except Exception:  # a formula that does not accept this overload's arguments
            return 0.0

    def time_signature(
        self, sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any
    ) -> OpTiming:
        if is_kernel_free(func):
            return OpTiming(0.0, "none", 0.0)
        moved = sum(_nbytes(t) for t in _tensors((args, kwargs))) + sum(_nbytes(t) for t in _tensors(out))
        mem_us = moved / (self.gpu.memory_bandwidth_gbps * 1e3 * self.memory_efficiency)
        flops = self.flops(func, args, kwargs, out)
        compute_us = 0.0
        if flops:
            dtype = sig.dtypes[0] if sig.dtypes else "float32"
            peak = self.gpu.tensor_tflops.get(dtype) or self.gpu.vector_tflops.get(dtype, 50.0)
            compute_us = flops / (peak * 1e6 * self.matmul_efficiency)
        dur = max(mem_us, compute_us) + self.kernel_overhead_us
        return OpTiming(dur, "roofline", self.launch_overhead_us)
