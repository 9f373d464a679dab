"""The global-memory scratch a CUDA reduction takes from the caching allocator for its launch.

``gpu_reduce_kernel`` (``ATen/native/cuda/Reduce.cuh``) splits a reduction across thread blocks
when each output has many inputs and there are few outputs; the blocks then combine partial results
through a buffer of ``ReduceConfig::global_memory_size()`` bytes and a semaphore array, both taken
from the caching allocator for the call and given back when it returns. For a column reduction
(a ``Linear`` bias gradient: ``sum`` over the batch dim of an ``(N, out)`` tensor) the buffer is
large: ``sum(0)`` of a ``(1024, 8192)`` fp32 tensor takes 64 MiB, twice its input (measured on an
H200, torch 2.11, ``torch.cuda.memory._record_memory_history``: an allocation under
``gpu_reduce_kernel<float, float, 4, 4, ...sum_functor...>``). Peak memory sees it.

This is a port of ``setReduceConfig`` for CUDA (not ROCm), read from the header that ships with
torch 2.13 (the same logic as 2.11's), for the ops that reach ``gpu_reduce_kernel`` with a plain
accumulator: ``sum``, ``mean``, ``amax``/``amin``, ``linalg_vector_norm``, ``prod``. The
TensorIterator geometry it needs (reduced dims first, each group ordered by stride, coalesced) is
rebuilt from the input's sizes and strides; inputs past 32-bit indexing (split into sub-iterators
on a GPU) are left out, as are ops with index or Welford accumulators (``max.dim``, ``var``).
"""

from __future__ import annotations

from typing import Any

import torch

aten = torch.ops.aten

WARP = 32
MAX_THREADS = 512
"""``mnt_wrapper<T>::MAX_NUM_THREADS`` (256 only for complex double, not modelled)."""
MAX_THREADS_PER_SM = 2048
"""``maxThreadsPerMultiProcessor`` of sm80 / sm90."""
MIN_VALUES_PER_THREAD, MAX_VALUES_PER_THREAD = 16, 256
REDUCE_PACKETS = frozenset({aten.sum, aten.mean, aten.prod, aten.amax, aten.amin, aten.linalg_vector_norm})
"""Op packets whose CUDA kernels are ``gpu_reduce_kernel`` with a plain accumulator."""


def _dims_all(x: torch.Tensor) -> list[int]:
    return list(range(x.dim()))


def _reduced_dims(func: Any, args: tuple, kwargs: dict) -> list[int] | None:
    """The reduced dims of a supported reduction call, or ``None`` (not one of them)."""
    x = args[0]
    packet = func.overloadpacket
    if packet in (aten.sum, aten.mean, aten.prod):
        if func._overloadname == "default":
            return _dims_all(x)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
    elif packet in (aten.amax, aten.amin):
        dim = args[1] if len(args) > 1 else kwargs.get("dim", [])
    elif packet is aten.linalg_vector_norm:
        dim = args[2] if len(args) > 2 else kwargs.get("dim")
    else:
        return None
    if dim is None or (isinstance(dim, list | tuple) and len(dim) == 0):
        return _dims_all(x)
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted({d % max(x.dim(), 1) for d in dims})


def _acc_bytes(func: Any, x: torch.Tensor, kwargs: dict) -> int:
    packet = func.overloadpacket
    if packet in (aten.amax, aten.amin):
        return x.element_size()  # MaxOps / MinOps accumulate in the input type
    dtype = kwargs.get("dtype") or x.dtype
    return 8 if dtype in (torch.float64, torch.complex64) or not dtype.is_floating_point else 4


def _iter_dims(x: torch.Tensor, reduced: list[int]) -> list[tuple[int, int, bool]]:
    """``(size, input stride in elements, reduced)`` per TensorIterator dim: size-1 dims dropped,
    reduced dims first (``reorder_dimensions`` moves the output's zero strides to the front), each
    group fastest first (reduced: by input stride; kept: by the contiguous output's order), then
    neighbours coalesced where the input's strides allow it."""
    red = [(x.size(d), x.stride(d), True) for d in reduced if x.size(d) != 1]
    kept = [(x.size(d), x.stride(d), False) for d in reversed(range(x.dim())) if d not in reduced and x.size(d) != 1]
    dims = sorted(red, key=lambda t: t[1]) + kept
    out: list[tuple[int, int, bool]] = []
    for size, stride, r in dims:
        if out and out[-1][2] == r and out[-1][1] * out[-1][0] == stride:
            ps, pst, _ = out[-1]
            out[-1] = (ps * size, pst, r)
        else:
            out.append((size, stride, r))
    return out


def _last_pow2(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def scratch_bytes(func: Any, args: tuple, kwargs: dict, sm_count: int) -> tuple[int, int]:
    """``(global_memory_size, semaphore_size)`` the CUDA reduction ``func`` allocates for this call;
    ``(0, 0)`` where it allocates none or is not a modelled reduction."""
    if not args or not isinstance(args[0], torch.Tensor) or args[0].numel() == 0:
        return 0, 0
    x = args[0]
    if not all(type(v) is int for v in (*x.shape, *x.stride())):
        return 0, 0  # symbolic sizes (a compiled graph's dynamic dims): not modelled
    reduced = _reduced_dims(func, args, kwargs)
    if reduced is None or x.numel() >= 2**31 or x.is_complex():
        return 0, 0
    dims = _iter_dims(x, reduced)
    if not dims:
        return 0, 0
    n_red = sum(1 for d in dims if d[2])
    if n_red == 0:
        return 0, 0
    num_outputs = 1
    for size, _, r in dims:
        if not r:
            num_outputs *= size
    inputs_per_output = x.numel() // num_outputs
    fastest = n_red == len(dims) or dims[0][1] < dims[n_red][1]
    if fastest:
        dim0, dim1, moving = inputs_per_output, num_outputs, dims[0][1]
    else:
        dim0, dim1, moving = num_outputs, inputs_per_output, dims[n_red][1]
    output_vec = 1
    if moving == 1:
        if fastest and dim0 >= 128 and n_red == 1:
            dim0 //= 8 if x.element_size() == 2 else 4  # sum's input_vec_size: 8 for 16-bit inputs, else vt0 = 4
        elif not fastest:
            output_vec = _output_vec_size(x, dims, n_red)
            dim0 //= output_vec
    # set_block_dimension
    max_threads = MAX_THREADS // output_vec
    d0 = _last_pow2(dim0) if dim0 < max_threads else max_threads
    d1 = _last_pow2(dim1) if dim1 < max_threads else max_threads
    bw = min(d0, WARP)
    bh = min(d1, max_threads // bw)
    bw = min(d0, max_threads // bh)
    threads = bw * bh
    step_in, step_out = 1, 1
    block_x_reduce = False
    if fastest:
        block_x_reduce = True
        step_in *= bw
    else:
        step_out *= bw

    def vpt() -> int:
        return -(-inputs_per_output // step_in)

    split_warps = vpt() >= min(bh * 16, MAX_VALUES_PER_THREAD)
    if split_warps:
        step_in *= bh
    else:
        step_out *= bh
    target_grid = sm_count * (MAX_THREADS_PER_SM // threads)
    grid_x = -(-(num_outputs // output_vec) // step_out)
    ctas = 1
    if split_warps and vpt() >= MAX_VALUES_PER_THREAD and grid_x <= target_grid:
        c1 = -(-target_grid // grid_x)
        c2 = -(-vpt() // MIN_VALUES_PER_THREAD)
        c3 = -(-vpt() // MAX_VALUES_PER_THREAD)
        ctas = max(min(c1, c2), c3)
    if ctas <= 1:
        return 0, 0
    size = _acc_bytes(func, x, kwargs) * num_outputs * ctas
    if not block_x_reduce:
        size *= bw * output_vec
    return size, 4 * grid_x


def _output_vec_size(x: torch.Tensor, dims: list[tuple[int, int, bool]], n_red: int) -> int:
    """``get_output_vec_size``: 4, halved until it divides the input's offset, the first kept dim's
    size and every other dim's stride (the allocator's blocks are 512-byte aligned)."""
    vec = 4

    def fit(n: int) -> None:
        nonlocal vec
        while n % vec:
            vec //= 2

    fit(int(x.storage_offset()))
    fit(dims[n_red][0])
    for j, (_, stride, _) in enumerate(dims):
        if j != n_red:
            fit(stride)
    return vec
