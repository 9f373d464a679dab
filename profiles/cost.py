"""What an op costs in the abstract: its family, FLOPs and bytes moved, and the ideal (peak-rate) time.

Both the analytic roofline and the profile replay's fitted fallback start from
these numbers; the recorder stores them with every measured entry so that a
profile file alone is enough to calibrate the fallback per op family.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from profiles.gpus import GpuSpec

FAMILIES = ("matmul", "attention", "reduction", "copy", "optimizer", "elementwise")
"""Op families the replay model calibrates separately (``elementwise`` is the catch-all)."""

_MATMUL = {
    "mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "mv", "addmv", "dot", "vdot",
    "_scaled_mm", "_int_mm", "convolution", "convolution_backward", "cudnn_convolution",
    "_convolution", "_addmm_activation", "addr", "_grouped_mm", "_scaled_grouped_mm",
}  # fmt: skip
_REDUCTION = {
    "sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "norm", "linalg_vector_norm",
    "var", "std", "var_mean", "std_mean", "prod", "cumsum", "cumprod", "logsumexp", "_softmax",
    "_log_softmax", "_softmax_backward_data", "_log_softmax_backward_data", "native_layer_norm",
    "native_layer_norm_backward", "native_group_norm", "native_group_norm_backward",
    "native_batch_norm", "native_batch_norm_backward", "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional", "_fused_rms_norm", "_fused_rms_norm_backward",
    "nll_loss_forward", "nll_loss_backward", "nll_loss2d_forward", "nll_loss2d_backward",
    "topk", "sort", "all", "any", "count_nonzero", "_local_scalar_dense", "nonzero",
    "cross_entropy_loss", "mse_loss", "mse_loss_backward",
}  # fmt: skip
_COPY = {
    "_to_copy", "copy_", "clone", "cat", "stack", "index", "index_select", "gather", "scatter",
    "scatter_add", "scatter_add_", "scatter_", "embedding", "embedding_dense_backward", "_unsafe_index",
    "_unsafe_index_put", "index_put", "index_put_", "index_add", "index_add_", "constant_pad_nd",
    "repeat", "slice_scatter", "select_scatter", "masked_select", "flip", "roll", "tril", "triu",
    "_copy_from", "_copy_from_and_resize", "contiguous", "split_with_sizes_copy", "unbind_copy",
}  # fmt: skip


def family_of(op: str) -> str:
    """Family of an overload name such as ``aten.mm.default`` (or a packet name ``aten.mm``)."""
    parts = op.split(".")
    name = parts[1] if len(parts) > 1 else parts[0]
    if "attention" in name or "flash" in name:
        return "attention"
    if name in _MATMUL:
        return "matmul"
    if name.startswith(("_foreach_", "_fused_adam", "_fused_sgd", "_fused_adagrad")):
        return "optimizer"
    if name in _REDUCTION:
        return "reduction"
    if name in _COPY:
        return "copy"
    return "elementwise"


def tensors_of(x: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(x)[0] if isinstance(t, torch.Tensor)]


def op_bytes(args: tuple, kwargs: dict, out: Any) -> int:
    """Bytes of all tensor inputs and outputs (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for t in tensors_of((args, kwargs)) + tensors_of(out):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def _grouped_mm_flops(a: torch.Tensor, b: torch.Tensor, *rest: Any, out_val: Any = None, **kw: Any) -> float:
    """``_grouped_mm``: 2·M·K·N summed over the groups. With 2-D × 2-D the groups split K (the weight
    gradient of grouped experts); otherwise every output element contracts ``a``'s last dim."""
    if a.dim() == 2 and b.dim() == 2:
        return 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    return 2.0 * out_val.numel() * a.shape[-1] if isinstance(out_val, torch.Tensor) else 0.0


_EXTRA_FLOPS = {torch.ops.aten._grouped_mm: _grouped_mm_flops}
"""Formulas ``torch.utils.flop_counter`` lacks."""


def refreshed_costs(op: str, key: str, flops: float) -> tuple[str, float]:
    """``(family, flops)`` of a stored profile entry by the current cost rules: entries recorded before
    an op's family or FLOP formula was known (``_EXTRA_FLOPS``) are re-derived from the key's shapes and
    dtypes on meta tensors, so fitted fallbacks see them as what they are."""
    family = family_of(op)
    if flops or family != "matmul":
        return family, flops
    name, _, overload = op.removeprefix("aten.").partition(".")
    packet = getattr(torch.ops.aten, name, None)
    f = _EXTRA_FLOPS.get(packet) if packet is not None else None
    parts = key.split("|")
    if f is None or len(parts) < 3:
        return family, flops
    try:
        args = [torch.empty([int(d) for d in s.split("x")] if s else [], dtype=getattr(torch, dt), device="meta")
                for s, dt in zip(parts[1].split(";"), parts[2].split(","), strict=True)]
        out = getattr(packet, overload or "default")(*args)
        return family, float(f(*args, out_val=out))
    except Exception:  # a key these shapes cannot be rebuilt from: keep what was stored
        return family, flops


def op_flops(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> float:
    """FLOPs from ``torch.utils.flop_counter``'s formulas (matmul, conv, attention) and
    :data:`_EXTRA_FLOPS`; 0 for other ops."""
    f = flop_registry.get(func.overloadpacket) or _EXTRA_FLOPS.get(func.overloadpacket)
    if f is None:
        return 0.0
    try:
        return float(f(*args, **kwargs, out_val=out))
    except Exception:  # a formula that does not accept this overload's arguments
        return 0.0


def peak_tflops(gpu: GpuSpec, family: str, dtype: str) -> float:
    """Peak rate for FLOP-bound work of this family and dtype.

    Tensor cores for half-precision matmul/attention and for ``tf32`` (fp32
    with ``allow_tf32``); plain fp32 matmuls run on CUDA cores, PyTorch's default.
    """
    dtype = dtype.split("@")[0]
    if dtype == "tf32":
        return gpu.tensor_tflops.get("float32", 50.0)
    if family in ("matmul", "attention") and dtype != "float32":
        return gpu.tensor_tflops.get(dtype) or gpu.vector_tflops.get(dtype, 50.0)
    return gpu.vector_tflops.get(dtype, 50.0)


def ideal_us(gpu: GpuSpec, family: str, dtype: str, flops: float, nbytes: float) -> float:
    """Time at peak FLOP rate or peak memory bandwidth, whichever binds (no efficiency, no overhead)."""
    mem_us = nbytes / (gpu.memory_bandwidth_gbps * 1e3)
    compute_us = flops / (peak_tflops(gpu, family, dtype) * 1e6) if flops else 0.0
    return max(mem_us, compute_us)
