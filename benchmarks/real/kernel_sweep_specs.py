"""Kernel sweep specs for the per-family cost models (issue 17): grids to fit on, held-out points to check.

Writes ``--kernels-only`` spec lines (the format of ``missing_example.jsonl``) for
``phantora profile`` or :mod:`benchmarks.real.kernel_sweep_record`:

* ``grid_<family>.jsonl``: log grids the family models in ``profiles/families/``
  interpolate over (GEMM by M, N, K; attention by batch·heads, q_len, kv_len,
  head_dim; convolution by output pixels, C, K; bytes-bound ops by elements);
* ``heldout_<family>.jsonl``: random off-grid points, log-uniform in the same
  ranges (seed fixed), never used for fitting: the accuracy table in
  docs/validation.md is computed on them.

Keys are :func:`profiles.argspec.call_spec` of the call on FakeTensors, i.e. what
the simulator looks up. Inputs are laid out as real programs make them
(attention q/k/v as ``(B, S, H, D).transpose(1, 2)``; conv grads in the input's
memory format). fp32 GEMMs with the TF32 switch on carry ``tf32=True`` in their
key; the recorder turns the switch on for those lines.

    python3 benchmarks/real/kernel_sweep_specs.py --out build/kernel_sweep   # prints counts and cost estimate
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles.argspec import call_spec
from profiles.cost import family_of, ideal_us, op_bytes, op_flops, tensors_of
from profiles.gpus import get_gpu

aten = torch.ops.aten
GPU = get_gpu("h200")
BF16, FP32 = torch.bfloat16, torch.float32

GEMM_DIMS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
"""M, N, K grid of mm/addmm (powers of two: the family model interpolates log time between them)."""
GEMM_LAYOUTS = ("cc", "cn", "nc")
"""a/b contiguous or transposed: ``x @ w`` (grad input), ``x @ w.t()`` (linear forward), ``g.t() @ x`` (grad weight)."""
BMM_B = [1, 4, 16, 64]
BMM_DIMS = [16, 64, 256, 1024, 4096]
ATT_BH = [4, 16, 64, 256]
ATT_S = [128, 256, 512, 1024, 2048, 4096, 8192]
ATT_D = [64, 128]
ATT_DECODE_KV = [128, 512, 2048, 8192, 32768]
ATT_DECODE_BH = [8, 32, 128, 512]
CONV_NH = [(1, 7), (1, 28), (4, 56), (16, 56), (32, 112)]
"""(batch, spatial size) pairs: output pixels from 49 to 401k."""
CONV_CK = [16, 64, 256, 1024]
BYTES_NUMEL = [2**k for k in range(10, 29, 2)]
"""Elements of bytes-bound ops: 1k .. 256M in 4x steps."""
BYTES_COLS = [256, 1024, 4096, 16384]
"""Row length (last dim) of row-wise ops (norms, softmax, reductions over the last dim)."""
FOREACH_T = [1, 4, 16, 64, 256]
FOREACH_NUMEL = [2**k for k in range(10, 25, 2)]
MAX_LIST_NUMEL = 2**27
"""Elements per tensor list of a foreach/fused-optimizer spec (memory cap)."""


def _t(shape: list[int], dtype: torch.dtype = BF16, transposed: bool = False) -> torch.Tensor:
    """A fake CUDA tensor; ``transposed`` makes a 2-D (or last-two-dims) transposed view."""
    if transposed:
        s = [*shape[:-2], shape[-1], shape[-2]]
        return torch.empty(s, dtype=dtype, device="cuda").transpose(-1, -2)
    return torch.empty(shape, dtype=dtype, device="cuda")


def _spec(
    func: torch._ops.OpOverload,
    args: tuple,
    kwargs: dict | None = None,
    tf32: bool = False,
    point: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One spec line with the simulator's key, the family, the sweep point and an ideal-time estimate."""
    kwargs = kwargs or {}
    out = func(*args, **kwargs)
    spec = call_spec(func, args, kwargs)
    if tf32:
        spec["key"] += ("," if not spec["key"].endswith("|") else "") + "tf32=True"
    family = family_of(str(func))
    dtype = "tf32" if tf32 else str(tensors_of(args)[0].dtype).removeprefix("torch.")
    spec["family"] = family
    spec["ideal_us"] = ideal_us(
        GPU, family, dtype, op_flops(func, args, kwargs, out), op_bytes(args, kwargs, out)
    )
    if point:
        spec["point"] = point
    return spec


# -- GEMM ------------------------------------------------------------------------------------------
def gemm(m: int, n: int, k: int, dtype: torch.dtype, layout: str, tf32: bool, bias: bool = False) -> dict:
    a = _t([m, k], dtype, layout[0] == "n")
    b = _t([k, n], dtype, layout[1] == "n")
    pt = {"m": m, "n": n, "k": k, "layout": layout}
    if bias:
        return _spec(aten.addmm.default, (_t([n], dtype), a, b), tf32=tf32, point=pt)
    return _spec(aten.mm.default, (a, b), tf32=tf32, point=pt)


def bmm(bt: int, m: int, n: int, k: int, dtype: torch.dtype, layout: str) -> dict:
    a = _t([bt, m, k], dtype, layout[0] == "n")
    b = _t([bt, k, n], dtype, layout[1] == "n")
    return _spec(aten.bmm.default, (a, b), point={"b": bt, "m": m, "n": n, "k": k, "layout": layout})


_GEMM_VARIANTS = [(BF16, False), (FP32, False), (FP32, True)]


def gemm_grid() -> Iterator[dict]:
    for dtype, tf32 in _GEMM_VARIANTS:
        for layout in GEMM_LAYOUTS:
            for m in GEMM_DIMS:
                for n in GEMM_DIMS:
                    for k in GEMM_DIMS:
                        yield gemm(m, n, k, dtype, layout, tf32)
    for dtype in (BF16, FP32):  # addmm: the linear forward with a bias (layout cn)
        for m in GEMM_DIMS:
            for n in GEMM_DIMS:
                for k in GEMM_DIMS:
                    yield gemm(m, n, k, dtype, "cn", False, bias=True)
    for layout in ("cc", "cn"):
        for bt in BMM_B:
            for m in BMM_DIMS:
                for n in BMM_DIMS:
                    for k in BMM_DIMS:
                        if bt * m * n * k <= 2**34:
                            yield bmm(bt, m, n, k, BF16, layout)


def _logu(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _dim(rng: random.Random, lo: int, hi: int, mult: int) -> int:
    """Log-uniform integer in [lo, hi], rounded to a multiple of ``mult`` (model widths and token counts are)."""
    return max(mult, round(_logu(rng, lo, hi) / mult) * mult)


def gemm_heldout(rng: random.Random) -> Iterator[dict]:
    for dtype, tf32 in _GEMM_VARIANTS:
        for layout in GEMM_LAYOUTS:
            for _ in range(60):
                yield gemm(
                    _dim(rng, 16, 16384, 16),
                    _dim(rng, 16, 16384, 16),
                    _dim(rng, 16, 16384, 16),
                    dtype,
                    layout,
                    tf32,
                )
    for dtype in (BF16, FP32):
        for _ in range(50):
            yield gemm(
                _dim(rng, 16, 16384, 16),
                _dim(rng, 16, 16384, 16),
                _dim(rng, 16, 16384, 16),
                dtype,
                "cn",
                False,
                True,
            )
    for layout in ("cc", "cn"):
        n_ok = 0
        while n_ok < 40:
            bt, m, n, k = (
                _dim(rng, 1, 64, 1),
                _dim(rng, 16, 4096, 16),
                _dim(rng, 16, 4096, 16),
                _dim(rng, 16, 4096, 16),
            )
            if bt * m * n * k <= 2**34:
                n_ok += 1
                yield bmm(bt, m, n, k, BF16, layout)


# -- attention -------------------------------------------------------------------------------------
def _bh_split(bh: int, rng: random.Random | None = None) -> tuple[int, int]:
    """(batch, heads) with product ``bh`` (heads at most 32, as model configs have)."""
    h = min(bh, 32 if rng is None else rng.choice([8, 12, 16, 32]))
    while bh % h:
        h -= 1
    return bh // h, h


def attention(
    b: int, h: int, sq: int, skv: int, d: int, causal: bool, backward: bool, dtype: torch.dtype = BF16
) -> dict:
    """cuDNN SDPA (what PyTorch 2.11 runs for bf16 on H200) forward or backward, q/k/v as (B, S, H, D)ᵀ."""
    q = _t([b, sq, h, d], dtype).transpose(1, 2)
    k = _t([b, skv, h, d], dtype).transpose(1, 2)
    v = _t([b, skv, h, d], dtype).transpose(1, 2)
    lse = sq > 1
    pt = {"bh": b * h, "sq": sq, "skv": skv, "d": d, "causal": causal, "bwd": backward}
    fwd_args = (q, k, v, None, lse, 0.0, causal)
    if not backward:
        return _spec(aten._scaled_dot_product_cudnn_attention.default, fwd_args, point=pt)
    o, logsumexp, _, _, mq, mk, seed, off, _ = aten._scaled_dot_product_cudnn_attention.default(*fwd_args)
    g = _t([b, sq, h, d], dtype).transpose(1, 2)
    args = (g, q, k, v, o, logsumexp, seed, off, None, None, None, mq, mk, 0.0, causal)
    return _spec(aten._scaled_dot_product_cudnn_attention_backward.default, args, point=pt)


def attention_grid() -> Iterator[dict]:
    for bwd in (False, True):
        for causal in (True, False):
            for d in ATT_D:
                for bh in ATT_BH:
                    for s in ATT_S:
                        if bh * s * s <= 2**32:
                            b, h = _bh_split(bh)
                            yield attention(b, h, s, s, d, causal, bwd)
    for d in ATT_D:  # decode: one query against a kv cache (inference; no backward, no causal mask)
        for bh in ATT_DECODE_BH:
            for kv in ATT_DECODE_KV:
                if bh * kv <= 2**22:
                    b, h = _bh_split(bh)
                    yield attention(b, h, 1, kv, d, False, False)


def attention_heldout(rng: random.Random) -> Iterator[dict]:
    n = 0
    while n < 120:
        bh, s = _dim(rng, 4, 256, 1), _dim(rng, 128, 8192, 64)
        if bh * s * s > 2**32:
            continue
        n += 1
        b, h = _bh_split(bh, rng)
        yield attention(b, h, s, s, rng.choice(ATT_D), rng.random() < 0.7, rng.random() < 0.5)
    for _ in range(30):
        bh, kv = _dim(rng, 8, 512, 1), _dim(rng, 128, 32768, 1)
        if bh * kv <= 2**22:
            b, h = _bh_split(bh, rng)
            yield attention(b, h, 1, kv, rng.choice(ATT_D), False, False)


# -- convolution -----------------------------------------------------------------------------------
def conv(
    n: int, c: int, hw: int, k: int, r: int, stride: int, dtype: torch.dtype, cl: bool, backward: bool
) -> dict:
    fmt = torch.channels_last if cl else torch.contiguous_format
    x = _t([n, c, hw, hw], dtype).to(memory_format=fmt)
    w = _t([k, c, r, r], dtype).to(memory_format=fmt)
    pad = r // 2
    conv_args = ([stride, stride], [pad, pad], [1, 1], False, [0, 0], 1)
    ho = (hw + 2 * pad - r) // stride + 1
    pt = {"n": n, "c": c, "hw": hw, "k": k, "r": r, "stride": stride, "cl": cl, "bwd": backward,
          "pixels": n * ho * ho}  # fmt: skip
    if not backward:
        return _spec(aten.convolution.default, (x, w, None, *conv_args), point=pt)
    g = _t([n, k, ho, ho], dtype).to(memory_format=fmt)
    return _spec(
        aten.convolution_backward.default, (g, x, w, None, *conv_args, [True, True, False]), point=pt
    )


_CONV_CFG = [(r, s) for r in (1, 3) for s in (1, 2)]


def conv_grid() -> Iterator[dict]:
    for bwd in (False, True):
        for dtype, cl in ((BF16, True), (BF16, False), (FP32, False)):
            for r, stride in _CONV_CFG:
                for n, hw in CONV_NH:
                    for c in CONV_CK:
                        for k in CONV_CK:
                            yield conv(n, c, hw, k, r, stride, dtype, cl, bwd)


def conv_heldout(rng: random.Random) -> Iterator[dict]:
    for bwd in (False, True):
        for dtype, cl in ((BF16, True), (BF16, False), (FP32, False)):
            for _ in range(30):
                r, stride = rng.choice(_CONV_CFG)
                n, hw = _dim(rng, 1, 32, 1), _dim(rng, 7, 112, 1)
                if n * hw * hw > 401408:
                    hw = int(math.sqrt(401408 / n))
                yield conv(n, _dim(rng, 16, 1024, 8), hw, _dim(rng, 16, 1024, 8), r, stride, dtype, cl, bwd)


# -- bytes-bound: norms, softmax, elementwise, reductions, copies, optimizers -----------------------
def _rowwise(op: str, rows: int, cols: int, dtype: torch.dtype) -> dict:
    x = _t([rows, cols], dtype)
    pt = {"numel": rows * cols, "cols": cols}
    if op == "layer_norm":
        return _spec(
            aten.native_layer_norm.default, (x, [cols], _t([cols], dtype), _t([cols], dtype), 1e-5), point=pt
        )
    if op == "layer_norm_bwd":
        _, mean, rstd = aten.native_layer_norm.default(x, [cols], _t([cols], dtype), _t([cols], dtype), 1e-5)
        args = (
            _t([rows, cols], dtype),
            x,
            [cols],
            mean,
            rstd,
            _t([cols], dtype),
            _t([cols], dtype),
            [True, True, True],
        )
        return _spec(aten.native_layer_norm_backward.default, args, point=pt)
    if op == "rms_norm":
        return _spec(aten._fused_rms_norm.default, (x, [cols], _t([cols], dtype), 1e-6), point=pt)
    if op == "softmax":
        return _spec(aten._softmax.default, (x, -1, False), point=pt)
    if op == "log_softmax":
        return _spec(aten._log_softmax.default, (x, 1, False), point=pt)
    if op == "softmax_bwd":
        return _spec(aten._softmax_backward_data.default, (_t([rows, cols], dtype), x, -1, dtype), point=pt)
    if op == "sum_last":
        return _spec(aten.sum.dim_IntList, (x, [-1]), point=pt)
    if op == "sum_first":
        return _spec(aten.sum.dim_IntList, (x, [0], True), point=pt)
    if op == "mean_last":
        return _spec(aten.mean.dim, (x, [-1]), point=pt)
    raise KeyError(op)


ROWWISE_OPS = ("layer_norm", "layer_norm_bwd", "rms_norm", "softmax", "log_softmax", "softmax_bwd",
               "sum_last", "sum_first", "mean_last")  # fmt: skip


def _flat(op: str, numel: int, dtype: torch.dtype) -> dict:
    cols = 1024 if numel >= 1024 else numel
    shape = [numel // cols, cols]
    x, y = _t(shape, dtype), _t(shape, dtype)
    pt = {"numel": numel}
    match op:
        case "add":
            return _spec(aten.add.Tensor, (x, y), point=pt)
        case "mul":
            return _spec(aten.mul.Tensor, (x, y), point=pt)
        case "add_":
            return _spec(aten.add_.Tensor, (x, y), point=pt)
        case "mul_scalar":
            return _spec(aten.mul.Tensor, (x, 0.5), point=pt)
        case "gelu":
            return _spec(aten.gelu.default, (x,), point=pt)
        case "gelu_bwd":
            return _spec(aten.gelu_backward.default, (x, y), point=pt)
        case "silu":
            return _spec(aten.silu.default, (x,), point=pt)
        case "silu_bwd":
            return _spec(aten.silu_backward.default, (x, y), point=pt)
        case "sum_all":
            return _spec(aten.sum.default, (x,), point=pt)
        case "to_other_dtype":
            other = FP32 if dtype == BF16 else BF16
            return _spec(aten._to_copy.default, (x,), {"dtype": other}, point=pt)
        case "copy_":
            return _spec(aten.copy_.default, (x, y), point=pt)
        case "clone_t":
            xt = _t(shape, dtype, transposed=True)
            return _spec(aten.clone.default, (xt,), {"memory_format": torch.contiguous_format}, point=pt)
        case "cat2":
            return _spec(aten.cat.default, ([x, y],), point=pt)
    raise KeyError(op)


FLAT_OPS = ("add", "mul", "add_", "mul_scalar", "gelu", "gelu_bwd", "silu", "silu_bwd", "sum_all",
            "to_other_dtype", "copy_", "clone_t", "cat2")  # fmt: skip


def _foreach(op: str, sizes: list[int]) -> dict:
    def lst() -> list[torch.Tensor]:
        return [_t([s], FP32) for s in sizes]

    pt = {"tensors": len(sizes), "numel": sum(sizes)}
    if op == "foreach_add_":
        return _spec(aten._foreach_add_.List, (lst(), lst()), {"alpha": 1.0}, point=pt)
    if op == "foreach_mul_":
        return _spec(aten._foreach_mul_.Scalar, (lst(), 0.9), point=pt)
    if op == "foreach_norm":
        return _spec(aten._foreach_norm.Scalar, (lst(), 2), point=pt)
    if op == "fused_adamw":
        steps = [_t([], FP32) for _ in sizes]
        kw = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "eps": 1e-8,
              "amsgrad": False, "maximize": False}  # fmt: skip
        return _spec(aten._fused_adamw_.default, (lst(), lst(), lst(), lst(), [], steps), kw, point=pt)
    raise KeyError(op)


FOREACH_OPS = ("foreach_add_", "foreach_mul_", "foreach_norm", "fused_adamw")


def bytes_grid() -> Iterator[dict]:
    for dtype in (BF16, FP32):
        for op in ROWWISE_OPS:
            for cols in BYTES_COLS:
                for numel in BYTES_NUMEL:
                    if numel >= cols:
                        yield _tag(_rowwise(op, numel // cols, cols, dtype), op)
        for op in FLAT_OPS:
            for numel in BYTES_NUMEL:
                yield _tag(_flat(op, numel, dtype), op)
    for op in FOREACH_OPS:
        for t in FOREACH_T:
            for numel in FOREACH_NUMEL:
                if t * numel <= MAX_LIST_NUMEL:
                    yield _tag(_foreach(op, [numel] * t), op)


def bytes_heldout(rng: random.Random) -> Iterator[dict]:
    for dtype in (BF16, FP32):
        for op in ROWWISE_OPS:
            for _ in range(10):
                cols = _dim(rng, 256, 16384, 64)
                rows = max(1, round(_logu(rng, 2**10, 2**28) / cols))
                yield _tag(_rowwise(op, rows, cols, dtype), op)
        for op in FLAT_OPS:
            for _ in range(8):
                yield _tag(_flat(op, _dim(rng, 2**10, 2**28, 1024), dtype), op)
    for op in FOREACH_OPS:
        for _ in range(12):
            t = _dim(rng, 1, 256, 1)
            sizes = [_dim(rng, 2**10, 2**24, 64) for _ in range(t)]
            while sum(sizes) > MAX_LIST_NUMEL:
                sizes = [s // 2 for s in sizes]
            yield _tag(_foreach(op, sizes), op)


def _tag(spec: dict, variant: str) -> dict:
    spec.setdefault("point", {})["variant"] = variant
    return spec


FAMILIES: dict[str, tuple[Callable[[], Iterator[dict]], Callable[[random.Random], Iterator[dict]]]] = {
    "gemm": (gemm_grid, gemm_heldout),
    "attention": (attention_grid, attention_heldout),
    "conv": (conv_grid, conv_heldout),
    "bytes": (bytes_grid, bytes_heldout),
}


def estimate_s(spec: dict, repeats: int = 5, warmup: int = 2, host_ms: float = 3.0) -> float:
    """Rough recording cost of one spec: (1 + warmup + repeats) calls at a guessed 50% of peak, plus host time."""
    return (1 + warmup + repeats) * max(spec["ideal_us"] / 0.5, 5.0) * 1e-6 + host_ms * 1e-3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/kernel_sweep", help="output folder")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help="comma-separated subset (also: gemm_offgrid, conv_dense, rows_dense, grouped)",
    )
    a = ap.parse_args()
    import kernel_sweep_specs_dense  # second-round families (not recorded yet); imports this module

    families = {**FAMILIES, **kernel_sweep_specs_dense.FAMILIES}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    with FakeTensorMode():
        for fam in a.families.split(","):
            grid, held = families[fam]
            for kind, specs in (("grid", grid()), ("heldout", held(random.Random(f"{a.seed}-{fam}")))):
                rows = {s["key"]: s for s in specs}
                est = sum(estimate_s(s) for s in rows.values())
                total += est
                with open(out / f"{kind}_{fam}.jsonl", "w", encoding="utf-8") as f:
                    for s in rows.values():
                        f.write(json.dumps(s, separators=(",", ":")) + "\n")
                print(f"{kind}_{fam}: {len(rows)} specs, ~{est:.0f} s")
    print(f"total ~{total:.0f} s")


if __name__ == "__main__":
    main()
