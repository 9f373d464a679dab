"""profiles: how long GPU ops take — measured kernel timings, replayed, and models for unseen ops."""

from profiles import replay as _replay  # noqa: F401  (registers the "replay" model)
from profiles import roofline as _roofline  # noqa: F401  (registers the "roofline" model)
from profiles.compute import (
    COMPUTE_MODELS,
    ComputeModel,
    OpSignature,
    OpTiming,
    build_compute_model,
    signature_of,
)
from profiles.gpus import GPUS, GpuSpec, get_gpu

__all__ = [
    "COMPUTE_MODELS",
    "GPUS",
    "ComputeModel",
    "GpuSpec",
    "OpSignature",
    "OpTiming",
    "build_compute_model",
    "get_gpu",
    "signature_of",
]
