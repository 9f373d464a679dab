"""GPU catalogue: the hardware facts every layer needs about a simulated GPU.

Numbers are the vendors' datasheet figures for dense (non-sparse) math, SXM
parts. ``total_memory_bytes`` is what ``torch.cuda.get_device_properties`` reports
on the real part (measured with the device tool; see docs/validation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from common.registry import Registry


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec:
    """One GPU model. Units live in the field names."""

    key: str
    """Short name used in scenarios and profiles: ``h100``, ``h200``."""
    name: str
    """What ``torch.cuda.get_device_name`` returns on the real part."""
    total_memory_bytes: int
    """``torch.cuda.get_device_properties(i).total_memory`` on the real part."""
    sm_count: int
    capability: tuple[int, int]
    l2_cache_bytes: int
    memory_bandwidth_gbps: float
    """HBM bandwidth in GB/s (10^9 bytes per second)."""
    tensor_tflops: dict[str, float] = field(default_factory=dict)
    """Dense tensor-core peak per dtype name (``bfloat16``, ``float16``, ``float32`` as TF32, ``float8_e4m3fn``)."""
    vector_tflops: dict[str, float] = field(default_factory=dict)
    """Non-tensor-core (CUDA core) peak per dtype name, for elementwise and reductions."""
    nvlink_gbps_per_direction: float = 0.0
    """Aggregate NVLink bandwidth per GPU per direction, GB/s."""


GPUS: Registry[GpuSpec] = Registry("GPU")


def _add(spec: GpuSpec) -> GpuSpec:
    GPUS.add(spec.key, spec)
    return spec


# NVIDIA H100 SXM5 80GB datasheet: 989.4 TFLOPS BF16/FP16 dense, 494.7 TF32 dense,
# 1978.9 FP8 dense, 66.9 FP32, 3.35 TB/s HBM3, 50 MB L2, 132 SMs, NVLink 900 GB/s
# bidirectional (450 GB/s per direction).
H100 = _add(
    GpuSpec(
        key="h100",
        name="NVIDIA H100 80GB HBM3",
        total_memory_bytes=85_017_493_504,  # torch 2.11 on the device tool's H100
        sm_count=132,
        capability=(9, 0),
        l2_cache_bytes=50 * 2**20,
        memory_bandwidth_gbps=3350.0,
        tensor_tflops={"bfloat16": 989.4, "float16": 989.4, "float32": 494.7, "float8_e4m3fn": 1978.9},
        vector_tflops={"float32": 66.9, "bfloat16": 133.8, "float16": 133.8, "float64": 33.5},
        nvlink_gbps_per_direction=450.0,
    )
)

# NVIDIA H200 SXM 141GB datasheet: same compute as H100 SXM, 4.8 TB/s HBM3e,
# 141 GB; nvidia-smi on the device tool's H200 shows 143771 MiB, torch 143155 MiB, and 60 MB of L2.
H200 = _add(
    replace(
        H100,
        key="h200",
        name="NVIDIA H200",
        total_memory_bytes=150_109_880_320,  # torch 2.11 on the device tool's H200
        l2_cache_bytes=60 * 2**20,
        memory_bandwidth_gbps=4800.0,
    )
)


def get_gpu(key: str) -> GpuSpec:
    """The spec for a scenario's ``gpu`` name (case-insensitive); unknown names list the valid ones."""
    return GPUS.get(key.lower())
