"""Roofline compute-time model: time = max(FLOPs / peak, bytes / bandwidth) + fixed kernel cost.

FLOPs come from ``torch.utils.flop_counter``'s formula registry (matmul,
convolution, attention); every other op is memory-bound on the bytes of its
tensor inputs and outputs. Efficiencies below 1 account for what real kernels
reach; the profile replay model replaces these guesses with measurements.
"""

from __future__ import annotations

from typing import Any

import torch

from profiles.compute import COMPUTE_MODELS, ComputeModel, OpSignature, OpTiming
from profiles.cost import op_bytes, op_flops, peak_tflops
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
    "aten._fused_sdp_choice",
    "aten._assert_tensor_metadata",
    "aten.is_same_size",
}


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
        return op_flops(func, args, kwargs, out)

    def time_signature(
        self, sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any
    ) -> OpTiming:
        if is_kernel_free(func):
            return OpTiming(0.0, "none", 0.0)
        mem_us = op_bytes(args, kwargs, out) / (self.gpu.memory_bandwidth_gbps * 1e3 * self.memory_efficiency)
        flops = self.flops(func, args, kwargs, out)
        compute_us = 0.0
        if flops:
            dtype = sig.dtypes[0] if sig.dtypes else "float32"
            peak = peak_tflops(self.gpu, "matmul", dtype)
            compute_us = flops / (peak * 1e6 * self.matmul_efficiency)
        dur = max(mem_us, compute_us) + self.kernel_overhead_us
        return OpTiming(dur, "roofline", self.launch_overhead_us)
