"""Which aten ops reach the shim whole and which as their composite pieces, as on a CUDA build."""

from __future__ import annotations

from typing import Any

import torch

_DEVICE_KERNELS: list[Any] = []


def register_device_kernels() -> None:
    """Give the CPU build's CUDA key a kernel for each aten op that has a composite kernel *and* a
    backend one (``silu_backward``, ``mish_backward``): the dispatcher then routes fake cuda tensors to
    the mode with the op whole, as on the CUDA build (where the GPU runs one kernel), instead of
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


def decomposes_on_device(name: str) -> bool:
    """An op the GPU runs as its composite pieces: a CompositeImplicitAutograd kernel and no kernel of
    a backend's own. Ops with both (``silu_backward``: one fused kernel on a GPU, recorded so on an
    H200) keep theirs; the CPU build has no CUDA kernels, so a CPU kernel stands for the device's."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    if not has(name, "CompositeImplicitAutograd"):
        return False
    return not any(has(name, k) for k in ("CUDA", "CPU", "CompositeExplicitAutograd"))
