"""Which fused attention kernel a real H100/H200 would pick for SDPA, and the calls it then makes.

On the CPU build ``aten._fused_sdp_choice`` answers for the CPU and would send
fake-cuda attention down the decomposed math path, with a different op stream
and different saved activations. We answer like the CUDA build of torch 2.11
(cuDNN >= 9.15, ``select_sdp_backend`` in ``sdp_utils.cpp``) does:

* order: cuDNN, flash, memory-efficient, math on sm90/sm100
  (``check_prefer_cudnn_attention``; unless ``TORCH_CUDNN_SDPA_DEPRIORITIZED`` is
  set), else flash, memory-efficient, math, cuDNN; a priority order the user set
  (``sdpa_kernel(..., set_priority=True)``) is taken as is; the
  ``torch.backends.cuda.enable_*_sdp`` switches and ``sdpa_kernel`` are honoured.
* every fused kernel: 4-D q/k/v of one dtype, non-empty sequences, equal batch
  sizes, ``stride(-1) == 1`` on q/k/v and the mask; equal head counts, or with
  ``enable_gqa`` grouped-query heads (``Hk == Hv``, ``Hq % Hk == 0``) for cuDNN and
  flash only: memory-efficient attention has no GQA in 2.11, so GQA in fp32 is math.
* cuDNN: fp16/bf16, head dims <= 256 (sm90) and multiples of 8, any dropout (the op stream of
  HF GPT-2, attention dropout 0.1, recorded on an H200: docs/conformance.md), a mask that does not require grad and is 2-D or broadcastable 4-D
  (``check_attn_mask_shape``); flash: fp16/bf16, no mask, equal head dims <= 256
  (padded to a multiple of 8), ``is_causal`` only with ``Sq == Sk``;
  memory-efficient: fp16/bf16/fp32, equal q/k head dims, head dims a multiple of 8
  (fp16/bf16) or 4 (fp32), any mask.

The checks see the mask as the caller passed it (after autocast); then, as
``aten::scaled_dot_product_attention`` does, a boolean mask becomes additive
(``where(mask, 0, -65504 for cuDNN / -inf)``) and memory-efficient attention gets
it 8-aligned (``preprocess_mask``: padded when its strides are not) and expanded to
``(B, Hq, Sq, Sk)``. The measured choices this mirrors (H200, torch 2.11.0+cu130,
cuDNN 9.19) are ``tests/data/sdpa_h200_torch211.json``.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor
from torch.nn.attention import SDPBackend

from interpose import runtime as _runtime

aten = torch.ops.aten

_HALF = (torch.float16, torch.bfloat16)
_CUDNN, _FLASH = int(SDPBackend.CUDNN_ATTENTION.value), int(SDPBackend.FLASH_ATTENTION.value)
_EFFICIENT, _MATH = int(SDPBackend.EFFICIENT_ATTENTION.value), int(SDPBackend.MATH.value)
_DEFAULT_ORDER = [_FLASH, _EFFICIENT, _MATH, _CUDNN]
"""The global context's order before anything sets it (``at::Context::sdp_priority_order``)."""
_CUDNN_ORDER = [_CUDNN, _FLASH, _EFFICIENT, _MATH]
_CUDNN_MASK_FILL = -65504.0
"""``convert_boolean_attn_mask_cudnn``: a finite fill (cuDNN mishandles -inf)."""
_MEM_EFF_MASK_ALIGNMENT = 8
"""``preprocess_mask``'s ``mem_eff_alignment`` (attention.cpp)."""


def _cudnn_preferred() -> bool:
    """sm90 / sm100 exactly (major 9 or 10, minor 0), as ``check_prefer_cudnn_attention``."""
    if os.environ.get("TORCH_CUDNN_SDPA_DEPRIORITIZED", "0") not in ("", "0"):
        return False
    major, minor = torch.cuda.get_device_capability()
    return major in (9, 10) and minor == 0


def _priority_order() -> list[int]:
    order = [int(b) for b in torch._C._get_sdp_priority_order()]
    known = [b for b in order if b in _DEFAULT_ORDER]
    if known == _DEFAULT_ORDER and _cudnn_preferred():
        return _CUDNN_ORDER
    return known


def _sm_in(lo: tuple[int, int], hi: tuple[int, int]) -> bool:
    return lo <= tuple(torch.cuda.get_device_capability()) <= hi


def _dense_ok(q, k, v, attn_mask, *, ignore_singleton_dim: bool) -> bool:
    """``check_tensor_shapes``, ``check_nonzero_sequence_lengths_dense``,
    ``check_last_dim_stride_equals_1_dense`` and one dtype for q/k/v."""
    if not (q.dim() == k.dim() == v.dim() == 4) or not (q.dtype == k.dtype == v.dtype):
        return False
    if q.size(-2) == 0 or k.size(-2) == 0:
        return False
    strides_ok = all(t.stride(-1) == 1 for t in (q, k, v))
    if ignore_singleton_dim:
        strides_ok = strides_ok or q.size(-1) == 1
    return strides_ok and (attn_mask is None or attn_mask.stride(-1) == 1)


def _heads_ok(q, k, v, enable_gqa: bool, supports_gqa: bool) -> bool:
    """``check_batch_size_and_num_heads_dense`` (+ ``check_grouped_query_attention``)."""
    if not (q.size(0) == k.size(0) == v.size(0)):
        return False
    hq, hk, hv = q.size(-3), k.size(-3), v.size(-3)
    if enable_gqa and supports_gqa:
        return hk == hv and hk > 0 and hq % hk == 0
    return hq == hk == hv


def _cudnn_mask_ok(q, k, attn_mask) -> bool:
    """``check_attn_mask_shape``: no grad, 2-D or 4-D broadcastable to (B, Hq, Sq, Sk)."""
    if attn_mask is None:
        return True
    if attn_mask.requires_grad or attn_mask.dim() not in (2, 4):
        return False
    if attn_mask.size(-2) not in (q.size(2), 1) or attn_mask.size(-1) not in (k.size(2), 1):
        return False
    return attn_mask.dim() == 2 or (attn_mask.size(0) in (1, q.size(0)) and attn_mask.size(1) in (1, q.size(1)))


def _cudnn_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.cudnn_sdp_enabled() or not _sm_in((8, 0), (12, 1)):
        return False
    if not _dense_ok(q, k, v, attn_mask, ignore_singleton_dim=True) or q.dtype not in _HALF:
        return False
    if not _cudnn_mask_ok(q, k, attn_mask):
        return False  # any dropout: a real H200 (torch 2.11, cuDNN 9.19) ran GPT-2's p=0.1 on cuDNN
    if torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled():
        return False  # check_cudnn_deterministic
    if not _heads_ok(q, k, v, enable_gqa, supports_gqa=True):
        return False
    if q.size(0) > 65535 or q.size(1) > 65535:
        return False
    d_qk, d_v = q.size(-1), v.size(-1)
    limit = 256 if tuple(torch.cuda.get_device_capability()) == (9, 0) else 128
    return k.size(-1) == d_qk and d_qk <= limit and d_v <= limit and d_qk % 8 == 0 and d_v % 8 == 0


def _flash_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.flash_sdp_enabled() or attn_mask is not None or not _sm_in((8, 0), (12, 1)):
        return False
    if not _dense_ok(q, k, v, attn_mask, ignore_singleton_dim=True) or q.dtype not in _HALF:
        return False
    if is_causal and q.size(-2) != k.size(-2):
        return False
    if not _heads_ok(q, k, v, enable_gqa, supports_gqa=True):
        return False
    d = q.size(-1)
    return k.size(-1) == d and v.size(-1) == d and d <= 256


def _efficient_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.mem_efficient_sdp_enabled() or not _sm_in((5, 0), (12, 1)):
        return False
    if not _dense_ok(q, k, v, attn_mask, ignore_singleton_dim=False) or q.dtype not in (*_HALF, torch.float32):
        return False
    if not _heads_ok(q, k, v, enable_gqa, supports_gqa=False):
        return False
    align = 8 if q.dtype in _HALF else 4  # minimum_gemm_alignment on sm80+
    d_qk, d_v = q.size(-1), v.size(-1)
    return k.size(-1) == d_qk and d_qk % align == 0 and d_v % align == 0 and d_qk > 0 and d_v > 0


_CHECKS = {_CUDNN: _cudnn_ok, _FLASH: _flash_ok, _EFFICIENT: _efficient_ok}


def choose_backend(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
) -> int:
    """The ``SDPBackend`` value a real GPU of the simulated kind would choose for these inputs.

    ``attn_mask`` as the caller passed it (boolean or additive, before any conversion)."""
    a = (query, key, value, attn_mask, dropout_p, is_causal, enable_gqa)
    for backend in _priority_order():
        if backend == _MATH:
            if torch.backends.cuda.math_sdp_enabled():
                return _MATH
        elif _CHECKS[backend](*a):
            return backend
    return _MATH  # a GPU raises "No available kernel"; the math path runs here


def _additive_mask(attn_mask, dtype: torch.dtype, fill: float):
    """``convert_boolean_attn_mask(_cudnn)``: ``where(mask, 0, fill)`` in the query's dtype, as the C++
    does it: one ``scalar_tensor`` for the fill, one for the wrapped 0, one ``where``, no ``logical_not``
    (the op stream of HF BERT's padded mask on an H200: docs/conformance.md)."""
    if attn_mask is None or attn_mask.dtype != torch.bool:
        return attn_mask
    fill_t = aten.scalar_tensor.default(fill, dtype=dtype, device=attn_mask.device)
    return torch.where(attn_mask, 0.0, fill_t)


def _preprocess_mask(mask, q, k):
    """``preprocess_mask``: pad to an 8-aligned last dim (then slice back) unless every stride but
    the last is a multiple of 8 and the last is 1; expand to (B, Hq, Sq, Sk)."""
    a = _MEM_EFF_MASK_ALIGNMENT
    aligned = mask.stride(-1) == 1 and all(s % a == 0 for s in mask.stride()[:-1])
    if not aligned:
        n = mask.size(-1)
        mask = F.pad(mask, (0, a - n % a))[..., :n]
    return mask.expand(q.size(0), q.size(1), q.size(2), k.size(2))


def make_sdpa(orig):
    """Wrap ``F.scaled_dot_product_attention``: fake-cuda inputs take the fused kernel a GPU would.

    The CPU build picks the backend with a per-device stub that has no CUDA
    entry, so the op-level choice cannot be intercepted; this mirrors what
    ``aten::scaled_dot_product_attention`` does on CUDA (autocast casts first, the
    backend is chosen on the caller's mask, then boolean masks become additive).
    """

    def scaled_dot_product_attention(
        query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
    ):
        # cuda tensors: the shim's fakes, or torch.compile's tracing tensors (Dynamo puts this function in
        # its graph by name, AOTAutograd traces it): both take the fused kernel a GPU would
        if not isinstance(query, FakeTensor) and query.device.type != "cuda":
            return orig(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                        scale=scale, enable_gqa=enable_gqa)
        if torch.is_autocast_enabled("cuda"):  # lower_precision_fp: every floating tensor argument
            dt = torch.get_autocast_dtype("cuda")
            query, key, value, attn_mask = (
                t.to(dt) if t is not None and t.dtype != dt and t.is_floating_point() else t
                for t in (query, key, value, attn_mask)
            )
        # choosing the backend is the shim's own work, not the script's: keep it off the host clock
        clock = _runtime.current().clock
        clock.enter()
        try:
            choice = choose_backend(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        finally:
            clock.leave()
        lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        if choice == _CUDNN:
            mask = _additive_mask(attn_mask, query.dtype, _CUDNN_MASK_FILL)
            return aten._scaled_dot_product_cudnn_attention(
                query, key, value, mask, lse, dropout_p, is_causal, False, scale=scale
            )[0]
        if choice == _FLASH:
            d = query.size(-1)
            s = scale if scale is not None else 1.0 / math.sqrt(d)
            if d % 8:  # pad_last_dim<8>: the kernel needs 8-aligned head dims
                query, key, value = (F.pad(t, (0, 8 - d % 8)) for t in (query, key, value))
            out = aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, False, scale=s)[0]
            return out[..., :d] if out.size(-1) != d else out
        if choice == _EFFICIENT:
            mask = _additive_mask(attn_mask, query.dtype, float("-inf"))
            if mask is not None:
                mask = _preprocess_mask(mask, query, key)
            return aten._scaled_dot_product_efficient_attention(
                query, key, value, mask, lse, dropout_p, is_causal, scale=scale
            )[0]
        return orig(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                    scale=scale, enable_gqa=enable_gqa)

    import torch._dynamo

    # torch.compile: one node in Dynamo's graph (as torch's own function is), traced by AOTAutograd
    torch._dynamo.allow_in_graph(scaled_dot_product_attention)
    return scaled_dot_product_attention
