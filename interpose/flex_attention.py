"""Higher-order ops: flex attention runs under FakeTensorMode's own rule and is timed as flash
attention on the same q/k/v, scaled by the fraction of blocks its mask computes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from interpose.op_args import involves_fake, shapes_text

if TYPE_CHECKING:
    from interpose.dispatch import SimDispatchMode

aten = torch.ops.aten

BACKWARD_FLOPS_RATIO = 2.5
"""Backward over forward work of a fused attention kernel (FlashAttention-2's FLOP count)."""

_DENSITY: dict[tuple, float] = {}


def block_density(block_mask: Any) -> float:
    """Fraction of (q, kv) blocks a flex-attention block mask computes.

    The mask built by the script holds fake tensors (no values), so its ``mask_mod`` is evaluated
    again on the CPU at block granularity; cached per (mask function, lengths, block sizes). A
    ``mask_mod`` that reads tensors (document masks) cannot be re-evaluated: every block counts.
    """
    try:
        # BlockMask.as_tuple(): (kv_len, q_len, ...tensors..., q_block, kv_block, mask_mod)
        kv_len, q_len, bq, bkv, mask_mod = block_mask[0], block_mask[1], block_mask[-3], block_mask[-2], block_mask[-1]
        if not all(isinstance(x, int) for x in (kv_len, q_len, bq, bkv)):
            return 1.0
    except (TypeError, IndexError):
        return 1.0
    cells = getattr(mask_mod, "__closure__", None) or ()
    if any(isinstance(c.cell_contents, torch.Tensor) for c in cells if c.cell_contents is not None):
        return 1.0
    if isinstance(mask_mod, torch.fx.GraphModule):
        # flex attention traced the mask function (Dynamo, backend "eager") before calling the op:
        # re-evaluate the traced graph when it reads nothing but (b, h, q_idx, kv_idx)
        if sum(n.op == "placeholder" for n in mask_mod.graph.nodes) != 4:
            return 1.0
        graph, code = mask_mod, mask_mod.code

        def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
            return graph(b, h, q, kv)

        mask_key: Any = code
    else:
        mask_key = getattr(mask_mod, "__code__", mask_mod)
    key = (mask_key, int(q_len), int(kv_len), int(bq), int(bkv))
    if key not in _DENSITY:
        from torch.nn.attention.flex_attention import create_block_mask

        try:
            real = create_block_mask(mask_mod, None, None, int(q_len), int(kv_len), device="cpu",
                                     BLOCK_SIZE=(int(bq), int(bkv)))
            _DENSITY[key] = max(0.0, 1.0 - float(real.sparsity()) / 100.0)
        except Exception:
            _DENSITY[key] = 1.0
    return _DENSITY[key]


def higher_order(mode: SimDispatchMode, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
    """Flex attention (``flex_attention`` / ``flex_attention_backward``) runs under FakeTensorMode's
    own rule and is timed as flash attention on the same q/k/v, scaled by the block mask's
    density (a fused Triton kernel of the same algorithm). Other higher-order ops run on the fake
    tensors untimed."""
    if not involves_fake(args, kwargs):
        return NotImplemented
    clock = mode.rt.clock
    clock.enter()
    try:
        impl = func.python_key_table.get(FakeTensorMode)
        if impl is None:
            return NotImplemented
        out = impl(mode.fake, *args, **kwargs)  # FakeTensorMode's rule (keyed by exact class)
        mode.track(out)
        name = func.name()
        if name in ("flex_attention", "flex_attention_backward"):
            q, k, v = args[0], args[1], args[2]
            density = block_density(args[4] if name == "flex_attention" else args[9])
            flash = aten._scaled_dot_product_flash_attention.default
            t = mode.model.time_op(flash, (q, k, v), {}, None)
            dur = t.dur_us * density * (BACKWARD_FLOPS_RATIO if name == "flex_attention_backward" else 1.0)
            shapes, dtype = shapes_text((q, k, v))
            mode.rt.launch(f"higher_order.{name}", shapes, dtype, dur, t.launch_us, t.source)
        return out
    finally:
        clock.leave()
