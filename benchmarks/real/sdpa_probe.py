"""Which SDPA backend a real GPU picks, over mask kinds x requires_grad x dropout x dtype x head_dim x GQA,
and why the fused kernels refused (the debug warnings of ``sdpa_kernel([backend])``).

    python3 benchmarks/real/sdpa_probe.py [BUDGET_S] > sdpa.jsonl        # on the GPU (device tool)

For every case: ``torch._fused_sdp_choice`` on the arguments, the aten attention ops a TorchDispatchMode sees
in forward + backward of ``F.scaled_dot_product_attention`` (with grad where anything requires it), and,
where the choice is MATH, each fused backend's refusal warning. JSON lines on stdout, flushed per case (a
run cut by a timeout keeps what it did): a header (device, versions, grid), then one line per case in the
format of ``tests/data/sdpa_h200_torch211.json``'s ``cases`` (plus ``dropout_p``, ``head_dim``, ``ops``,
``why``). The most informative cases come first (bf16, head dim 64, no GQA); it stops after BUDGET_S
seconds (default 50: a first attempt at the whole grid in one process did not finish in 70 s on an H200,
cuDNN building a graph per new configuration).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

B, H, S = 2, 4, 128
MASKS = {  # name -> (shape, dtype kind, requires_grad)
    "none": None,
    "bool": ((B, 1, S, S), "bool", False),
    "float": ((B, 1, S, S), "float", False),
    "float_requires_grad": ((B, 1, S, S), "float", True),
    "float_requires_grad_b1": ((1, H, S, S), "float", True),  # a learned bias shared over the batch (T5)
    "float_requires_grad_full": ((B, H, S, S), "float", True),
    "float_b1": ((1, H, S, S), "float", False),
    # T5's position bias: embedding(S, S) -> (S, S, H), permute(2, 0, 1).unsqueeze(0): last-dim stride H
    "float_permuted": ((1, H, S, S), "permuted", False),
    "float_requires_grad_permuted": ((1, H, S, S), "permuted", True),
}


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        n = str(func.overloadpacket.__name__)
        if "attention" in n or n in ("_safe_softmax", "bmm", "baddbmm"):
            self.ops.append(n)
        return func(*args, **(kwargs or {}))


def make(mask: str, dtype, d: int, kv: int, qkv_grad: bool):
    q = torch.randn(B, H, S, d, device="cuda", dtype=dtype, requires_grad=qkv_grad)
    k = torch.randn(B, kv, S, d, device="cuda", dtype=dtype, requires_grad=qkv_grad)
    v = torch.randn(B, kv, S, d, device="cuda", dtype=dtype, requires_grad=qkv_grad)
    spec = MASKS[mask]
    m = None
    if spec is not None:
        shape, kind, rg = spec
        if kind == "bool":
            m = torch.ones(shape, device="cuda", dtype=torch.bool).tril()
        elif kind == "permuted":
            leaf = torch.zeros(S, S, H, device="cuda", dtype=dtype, requires_grad=rg)
            m = leaf.permute(2, 0, 1).unsqueeze(0)
        else:
            m = torch.zeros(shape, device="cuda", dtype=dtype, requires_grad=rg)
    return q, k, v, m


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 50.0
    t0 = time.monotonic()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "cudnn": torch.backends.cudnn.version(),
                      "grid": {"q_shape": [B, H, S, "head_dim"], "masks": {k: (None if v is None else
                               {"shape": v[0], "kind": v[1], "requires_grad": v[2]}) for k, v in MASKS.items()},
                               "note": "bool masks are ones().tril(); float masks zeros() in the query dtype"}}),
          flush=True)
    grid = itertools.product((torch.bfloat16, torch.float32, torch.float16), (64, 128), (4, 2),
                             (0.1, 0.0, 0.0625), list(MASKS), (True, False), (False, True))
    for dtype, d, kv, p, mask, qkv_grad, causal in grid:
        if time.monotonic() - t0 > budget:
            print(f"budget of {budget:.0f} s spent", file=sys.stderr)
            break
        if causal and mask != "none":
            continue
        q, k, v, m = make(mask, dtype, d, kv, qkv_grad)
        gqa = kv != H
        choice = SDPBackend(torch._fused_sdp_choice(q, k, v, m, p, causal, enable_gqa=gqa)).name
        mode = Ops()
        err = None
        try:
            with mode:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p, is_causal=causal,
                                                     enable_gqa=gqa)
                if out.requires_grad:
                    out.sum().backward()
        except Exception as e:
            err = f"{type(e).__name__}: {str(e)[:200]}"
        why = {}
        if choice == "MATH":
            for b in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter("always")
                    try:
                        with sdpa_kernel([b]):
                            F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p, is_causal=causal,
                                                           enable_gqa=gqa)
                    except Exception:
                        pass
                why[b.name] = " | ".join(str(x.message)[:300] for x in w)
        print(json.dumps({"dtype": str(dtype).removeprefix("torch."), "head_dim": d, "kv_heads": kv, "enable_gqa": gqa,
                      "mask": mask, "is_causal": causal, "qkv_requires_grad": qkv_grad, "dropout_p": p,
                      "mask_stride": None if m is None else list(m.stride()), "backend": choice,
                      "ops": mode.ops, "error": err, "why": why}), flush=True)


if __name__ == "__main__":
    main()
