"""``aten._grouped_mm`` (``torch._grouped_mm``, ``F.grouped_mm``) as the CUDA build runs it.

FakeTensorMode uses the meta kernel, which accepts bf16 only and (``torch.version.cuda``
being ``None`` on the CPU build) gives a contiguous output. CUDA's ``_grouped_mm_cuda``
(torch 2.11, ``GroupedBlas.cpp`` / ``GroupedMMUtils.h``) takes fp32, fp16 and bf16: bf16
operands with a bf16 output on sm90/sm100 run the grouped CUTLASS kernel; everything else
runs ``_grouped_mm_fallback``, which copies ``offs`` to the host (a blocking copy: a
host-device sync) and loops ``mm_out`` over the groups. Either way the output is
``empty_strided`` with its last dim's stride padded to 16 bytes, in ``out_dtype`` (which
must equal ``mat_a``'s dtype). Mixed-precision MoE layers (transformers' ``grouped_mm``
experts with fp32 master weights under autocast) hit the fallback.

The op is logged and timed as one ``aten._grouped_mm.default``, which is what a
dispatch-level recording of the real GPU shows (the fallback's ``mm_out`` calls run
inside the CUDA kernel).
"""

from __future__ import annotations

from typing import Any

import torch

from interpose.host_copies import copy_kernel

_DTYPES = (torch.bfloat16, torch.float32, torch.float16)


def _check_strides(name: str, mat: torch.Tensor) -> None:
    """``check_valid_strides_and_return_transposed``: row- or column-major, 16-byte aligned."""
    align = 16 // mat.element_size()
    st, sz = mat.stride(), mat.shape
    if st[-2] == 1 and st[-1] >= max(1, sz[-2]):
        ok = st[-1] % align == 0
    elif st[-1] == 1 and st[-2] >= max(1, sz[-1]):
        ok = st[-2] % align == 0
    else:
        raise RuntimeError(f"Invalid strides/sizes, got {tuple(st)} for strides and {tuple(sz)} for sizes")
    if not ok:
        raise RuntimeError(f"{name}: strides should be multiple of 16 bytes, got {tuple(st)}")


def grouped_mm_output(a: torch.Tensor, b: torch.Tensor, offs, bias=None, out_dtype=None) -> torch.Tensor:
    """Validate like ``_grouped_mm_validate_inputs`` and build the output like
    ``create_grouped_gemm_output_tensor`` (call under the fake mode)."""
    for name, m in (("mat_a", a), ("mat_b", b)):
        if m.dtype not in _DTYPES:
            raise RuntimeError(f"Expected {name} to be Float32, BFloat16 or Float16 matrix, got {m.dtype}")
        if m.dim() not in (2, 3):
            raise RuntimeError(f"{name} has to be 2 or 3d")
    a2, b2 = a.dim() == 2, b.dim() == 2
    if (not a2 or not b2) and a.size(-1) != b.size(-2):
        raise RuntimeError("contraction dimension of mat_a and mat_b must match")
    _check_strides("mat_a", a)
    _check_strides("mat_b", b)
    if (offs is not None) != (a2 or b2):
        raise RuntimeError("Have to provide offsets if there is a 2d matrix, or no offset if both matrices are 3d")
    if offs is not None and (offs.dim() != 1 or offs.dtype != torch.int32):
        raise RuntimeError("offs has to be a 1D int32 tensor")
    if bias is not None:
        raise RuntimeError("Bias not supported yet")
    dtype = out_dtype or a.dtype
    if dtype != a.dtype:
        raise RuntimeError("Grouped gemm output dtype must match `mat_a` dtype")
    if a2:
        if b2:
            size = [offs.size(0), a.size(0), b.size(1)]
        else:
            if offs.size(0) != b.size(0):
                raise RuntimeError("matrix batch sizes have to match")
            size = [a.size(0), b.size(-1)]
    elif b2:
        if offs.size(0) != a.size(0):
            raise RuntimeError("matrix batch sizes have to match")
        size = [a.size(1), b.size(1)]
    else:
        if a.size(0) != b.size(0):
            raise RuntimeError("batched dimension has to match")
        size = [a.size(0), a.size(1), b.size(-1)]
    align = 16 // dtype.itemsize
    padded = (size[-1] + align - 1) // align * align
    stride = [padded, 1] if a2 != b2 else [size[1] * padded, padded, 1]
    return torch.empty_strided(size, stride, dtype=dtype, device=a.device)


def handler(mode) -> Any:
    """The ``SimDispatchMode`` special-op handler for ``aten._grouped_mm.default``."""

    def _grouped_mm(func, args, kwargs):
        names = ("self", "mat2", "offs", "bias", "out_dtype")
        a, b, offs, bias, out_dtype = (
            args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)
        )
        with mode.fake:
            out = grouped_mm_output(a, b, offs, bias, out_dtype)
        major = mode.rt.cfg.gpu.capability[0]
        fast = a.dtype == b.dtype == out.dtype == torch.bfloat16 and major in (9, 10)
        if not fast and offs is not None:  # _grouped_mm_fallback: offs.cpu()
            copy_kernel(mode, "aten._to_copy.default(d2h)", offs.numel() * offs.element_size(),
                        "x".join(map(str, offs.shape)), "int32", True, direction="d2h")
        mode.values.propagate(func, args, kwargs, out)
        mode.account(func, args, kwargs, out)
        return out

    return _grouped_mm
