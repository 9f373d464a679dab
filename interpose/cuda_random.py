"""CUDA random number generators without a driver: ``torch.Generator("cuda")``,
``torch.cuda.default_generators`` (one per device, as a GPU build fills it at ``_lazy_init``) and the
``torch.cuda`` RNG state functions.

A CUDA generator's state is 16 bytes, its seed and its Philox offset; programs save and restore it
(Megatron's RNG tracker forks a model-parallel generator state from ``get_rng_state``/``manual_seed``
and sets it back through ``default_generators[i].set_state``, activation checkpointing saves and
restores it around recomputation). Here the state round-trips exactly; the values a fake tensor
would hold are not reproduced (random factories of known dtypes draw from a CPU generator seeded
by the state's seed).
"""

from __future__ import annotations

import struct
from typing import Any

import torch

from interpose.cuda_device import device_count, device_index

STATE_BYTES = 16


class _GeneratorMeta(type(torch._C.Generator)):  # type: ignore[misc]
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, torch._C.Generator)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, torch._C.Generator)


class CudaGenerator(torch._C.Generator, metaclass=_GeneratorMeta):
    """``torch.Generator(device="cuda")``: a CPU generator that reports cuda and keeps a CUDA-style
    (seed, offset) state."""

    _sim_device: torch.device
    _sim_seed: int
    _sim_offset: int

    def __new__(cls, device: Any = "cpu"):
        d = torch.device(device) if device is not None else torch.device("cpu")
        if d.type != "cuda":
            return torch._C.Generator(d)
        g = super().__new__(cls, "cpu")  # type: ignore[call-arg]  # the stubs give Generator no __new__(device)
        g._sim_device = torch.device("cuda", d.index or 0)
        g._sim_seed, g._sim_offset = 67280421310721, 0  # c10's default seed
        return g

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self._sim_device

    def manual_seed(self, seed: int) -> CudaGenerator:  # type: ignore[override]
        seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        super().manual_seed(seed)
        self._sim_seed, self._sim_offset = seed, 0
        return self

    def seed(self) -> int:
        s = super().seed()
        self._sim_seed, self._sim_offset = s, 0
        return s

    def initial_seed(self) -> int:
        return self._sim_seed

    def get_state(self) -> torch.Tensor:
        raw = struct.pack("<QQ", self._sim_seed, self._sim_offset)
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()

    def set_state(self, new_state: torch.Tensor) -> CudaGenerator:  # type: ignore[override]
        if new_state.dtype != torch.uint8 or new_state.numel() != STATE_BYTES:
            raise RuntimeError(f"RNG state is wrong size: a CUDA generator's state is {STATE_BYTES} bytes "
                               f"(uint8), got {new_state.numel()} of {new_state.dtype}")
        seed, offset = struct.unpack("<QQ", bytes(new_state.cpu().tolist()))
        super().manual_seed(seed)
        self._sim_seed, self._sim_offset = seed, offset
        return self

    def clone_state(self) -> CudaGenerator:
        g = CudaGenerator(self._sim_device)
        g._sim_seed, g._sim_offset = self._sim_seed, self._sim_offset
        return g

    def graphsafe_get_state(self) -> CudaGenerator:
        return self.clone_state()

    def graphsafe_set_state(self, state: torch._C.Generator) -> CudaGenerator:
        return self.set_state(state.get_state())


_generators: list[CudaGenerator] = []


def default_generators() -> tuple[CudaGenerator, ...]:
    """One generator per device (made at install: ``torch.cuda.default_generators``)."""
    _generators[:] = [CudaGenerator(f"cuda:{i}") for i in range(device_count())]
    return tuple(_generators)


def _gen(device: Any = "cuda") -> CudaGenerator:
    idx = device_index(device)
    if not 0 <= idx < len(_generators):
        raise RuntimeError("CUDA error: invalid device ordinal")
    return _generators[idx]


def get_rng_state(device: Any = "cuda") -> torch.Tensor:
    return _gen(device).get_state()


def get_rng_state_all() -> list[torch.Tensor]:
    return [g.get_state() for g in _generators]


def set_rng_state(new_state: torch.Tensor, device: Any = "cuda") -> None:
    _gen(device).set_state(new_state)


def set_rng_state_all(new_states: Any) -> None:
    for g, s in zip(_generators, new_states, strict=False):
        g.set_state(s)


def manual_seed(seed: int) -> None:
    _gen().manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    for g in _generators:
        g.manual_seed(seed)


def seed() -> None:
    _gen().seed()


def seed_all() -> None:
    s = _gen().seed()
    for g in _generators:
        g.manual_seed(s)


def initial_seed() -> int:
    return _gen().initial_seed()
