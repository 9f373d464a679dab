"""``torch.cuda`` device queries and selection, answered from the scenario's GpuSpec and the runtime."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from interpose.runtime import current


def device_index(device: Any = None) -> int:
    if device is None:
        return current().device
    if isinstance(device, int):
        return device
    if isinstance(device, str):
        device = torch.device(device)
    if isinstance(device, torch.device):
        return current().device if device.index is None else device.index
    return current().device


@dataclass
class DeviceProperties:
    """What ``torch.cuda.get_device_properties`` returns, from the GpuSpec."""

    name: str
    total_memory: int
    major: int
    minor: int
    multi_processor_count: int
    L2_cache_size: int
    is_integrated: bool = False
    is_multi_gpu_board: bool = False
    max_threads_per_multi_processor: int = 2048
    warp_size: int = 32
    regs_per_multiprocessor: int = 65536
    shared_memory_per_block_optin: int = 232448
    gcnArchName: str = "NVIDIA"
    uuid: str = "00000000-0000-0000-0000-000000000000"
    pci_bus_id: int = 0
    pci_device_id: int = 0
    pci_domain_id: int = 0


def device_count() -> int:
    """The rank's local world size (one GPU per rank process), or as many devices as
    ``CUDA_VISIBLE_DEVICES`` lists, as CUDA counts them: one process driving several GPUs
    (``nn.DataParallel``) runs as ``CUDA_VISIBLE_DEVICES=0,1 phantora run --nproc-per-node 1``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        n = len([d for d in visible.split(",") if d.strip()])
        if n:
            return n
    return max(current().cfg.local_world_size, 1)


def current_device() -> int:
    return current().device


def set_device(device: Any) -> None:
    idx = device_index(device)
    if idx < 0:
        return
    if idx >= device_count():
        raise RuntimeError("CUDA error: invalid device ordinal")
    _select(idx)


def _select(idx: int) -> None:
    from interpose.cuda_streams import select_device  # cuda_streams imports this module

    select_device(idx)


class device:
    """``with torch.cuda.device(i):`` — temporarily selects device ``i``."""

    def __init__(self, device: Any) -> None:
        self.idx = device_index(device) if device is not None else -1
        self.prev_idx = -1

    def __enter__(self) -> None:
        self.prev_idx = current().device
        if self.idx >= 0:
            _select(self.idx)

    def __exit__(self, *exc: object) -> None:
        _select(self.prev_idx)


def get_device_properties(device: Any = None) -> DeviceProperties:
    g = current().cfg.gpu
    return DeviceProperties(
        name=g.name,
        total_memory=g.total_memory_bytes,
        major=g.capability[0],
        minor=g.capability[1],
        multi_processor_count=g.sm_count,
        L2_cache_size=g.l2_cache_bytes,
    )


def get_device_name(device: Any = None) -> str:
    return current().cfg.gpu.name


def get_device_capability(device: Any = None) -> tuple[int, int]:
    return tuple(current().cfg.gpu.capability)  # type: ignore[return-value]


def get_arch_list() -> list[str]:
    major, minor = current().cfg.gpu.capability
    return [f"sm_{major}{minor}"]


def synchronize(device: Any = None) -> None:
    current().sync_device()
