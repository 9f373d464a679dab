"""Which fused attention kernel a real H100/H200 would pick for SDPA.

On the CPU build ``aten._fused_sdp_choice`` answers for the CPU and would send
fake-cuda attention down the decomposed math path, with a different op stream
and different saved activations. We answer like the CUDA build (torch 2.11+,
cuDNN >= 9.15) does: on sm90/sm100 (``check_prefer_cudnn_attention`` in
``sdp_utils.cpp``; unless ``TORCH_CUDNN_SDPA_DEPRIORITIZED`` is set) cuDNN attention
first for fp16/bf16 with equal q/k/v head dims <= 256 (a multiple of 8), mask or
not; then flash for fp16/bf16 without an explicit mask and head_dim <= 256, else
memory-efficient attention (fp32 too), else math; honouring
``torch.backends.cuda``'s ``enable_*_sdp`` switches and
``torch.nn.attention.sdpa_kernel``. (Recorded on the device tool: torch
2.11.0+cu130 on H100 and H200 runs ``_scaled_dot_product_cudnn_attention`` for
the GPT example's bf16 causal attention.)
"""

from __future__ import annotations

import math
import os

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.nn.attention import SDPBackend

aten = torch.ops.aten

_HALF = (torch.float16, torch.bfloat16)


def _cudnn_preferred() -> bool:
    """sm90 / sm100 exactly (major 9 or 10, minor 0), as ``check_prefer_cudnn_attention``."""
    if os.environ.get("TORCH_CUDNN_SDPA_DEPRIORITIZED", "0") not in ("", "0"):
        return False
    major, minor = torch.cuda.get_device_capability()
    return major in (9, 10) and minor == 0


def _cudnn_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.cudnn_sdp_enabled() or not _cudnn_preferred():
        return False
    if q.dtype not in _HALF or q.dim() != 4 or (enable_gqa and q.size(-3) != k.size(-3)):
        return False
    d = q.size(-1)
    return d <= 256 and d % 8 == 0 and k.size(-1) == d and v.size(-1) == d


def _flash_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.flash_sdp_enabled() or attn_mask is not None:
        return False
    if q.dtype not in _HALF or q.dim() != 4:
        return False
    d = q.size(-1)
    return d <= 256 and d % 8 == 0 and k.size(-1) == d and v.size(-1) == d


def _efficient_ok(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa) -> bool:
    if not torch.backends.cuda.mem_efficient_sdp_enabled():
        return False
    if q.dtype not in (*_HALF, torch.float32) or q.dim() != 4:
        return False
    return q.size(-1) % 8 == 0 and v.size(-1) % 8 == 0


def choose_backend(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
) -> int:
    """The ``SDPBackend`` value a real sm90 GPU would choose for these inputs."""
    a = (query, key, value, attn_mask, dropout_p, is_causal, enable_gqa)
    if enable_gqa and query.size(-3) != key.size(-3):
        return int(SDPBackend.MATH.value)
    if _cudnn_ok(*a):
        return int(SDPBackend.CUDNN_ATTENTION.value)
    if _flash_ok(*a):
        return int(SDPBackend.FLASH_ATTENTION.value)
    if _efficient_ok(*a):
        return int(SDPBackend.EFFICIENT_ATTENTION.value)
    return int(SDPBackend.MATH.value)


def make_sdpa(orig):
    """Wrap ``F.scaled_dot_product_attention``: fake-cuda inputs take the fused kernel a GPU would.

    The CPU build picks the backend with a per-device stub that has no CUDA
    entry, so the op-level choice cannot be intercepted; this mirrors what
    ``aten::scaled_dot_product_attention`` does on CUDA for the flash and
    memory-efficient cases (autocast casts first, boolean masks become additive).
    """

    def scaled_dot_product_attention(
        query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
    ):
        def fallback(q, k, v, mask):
            return orig(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                        enable_gqa=enable_gqa)

        if not isinstance(query, FakeTensor):
            return fallback(query, key, value, attn_mask)
        if torch.is_autocast_enabled("cuda"):
            dt = torch.get_autocast_dtype("cuda")
            query, key, value = (
                t.to(dt) if t.dtype != dt and t.is_floating_point() else t for t in (query, key, value)
            )
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            m = torch.zeros_like(attn_mask, dtype=query.dtype)
            attn_mask = m.masked_fill_(attn_mask.logical_not(), float("-inf"))
        choice = choose_backend(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if choice == SDPBackend.CUDNN_ATTENTION.value:
            lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
            return aten._scaled_dot_product_cudnn_attention(
                query, key, value, attn_mask, lse, dropout_p, is_causal, False, scale=scale
            )[0]
        if choice == SDPBackend.FLASH_ATTENTION.value:
            s = scale if scale is not None else 1.0 / math.sqrt(query.size(-1))
            return aten._scaled_dot_product_flash_attention(
                query, key, value, dropout_p, is_causal, False, scale=s
            )[0]
        if choice == SDPBackend.EFFICIENT_ATTENTION.value:
            lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
            return aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, lse, dropout_p, is_causal, scale=scale
            )[0]
        return fallback(query, key, value, attn_mask)

    return scaled_dot_product_attention
