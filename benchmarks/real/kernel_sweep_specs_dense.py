"""Second-round kernel sweep specs (issue 17), all recorded on H200: what the families that miss their targets need.

The first sweep's lattices sit on powers of two (GEMM, conv channels) or 4x steps (row lengths), where
tiles divide evenly and kernels switch between nodes; the held-out shapes are off those points. These
families add fit data exactly there (written as ``grid_<family>.jsonl`` by
``kernel_sweep_specs.py --families ...``; shipped as ``sweep_grid_<family>.jsonl.gz``, except the off-lattice
GEMMs: ``sweep_offgrid_gemm.jsonl.gz``, a correction between the lattice's nodes; the held-out sets stay the
first round's, plus a fresh blind set, ``--seed 2026``, as ``sweep_blind_*``):

* ``gemm_offgrid``: random M, N, K (multiples of 16, log-uniform 16..16384, its own seed, so never a
  held-out point) per (dtype, layout), addmm and bmm: fit points for a quantisation correction on top
  of the lattice (cuBLAS's tile/wave losses for sizes between powers of two, which the lattice cannot
  show); 4,294 specs.
* ``conv_dense``: C and K on a √2 lattice 16..1024 including non-powers of two (24, 48, 96, …),
  11 (batch, size) pairs instead of 5: cuDNN picks kernels by channel alignment and size; 44,616 specs.
* ``rows_dense``: row lengths 256..65536 in ~√2 steps (50304: a vocabulary) plus lengths not divisible by 8 (PyTorch's
  softmax/layer-norm kernels switch at 1024/2048 and on vector alignment), and the flat ops at
  3·4^k rows (a transposing copy of 2^k rows runs 10-15% slower than its neighbours); 3,104 specs.
* ``grouped``: ``_grouped_mm`` (MoE experts, bf16) by groups 4..128, tokens per group 16..4096,
  K, N 256..8192 (powers of two and 1.5x them), three forms (x @ w[e], w transposed or not; xᵀ @ grad). ``offs`` (balanced
  cumulative group ends) is written into the spec's argument as ``values`` (``profiles/argspec.py``
  fills it from there; zeros would make every group empty). Its held-out set (``heldout_grouped``,
  its own seed) takes random off-lattice groups, tokens per group and K, N (multiples of 64).

    python3 benchmarks/real/kernel_sweep_specs.py --families gemm_offgrid,conv_dense,rows_dense,grouped
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import kernel_sweep_specs as k1
import torch

from profiles.argspec import call_spec

aten = torch.ops.aten
CONV_DENSE_CK = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]
CONV_DENSE_NH = [(1, 7), (1, 14), (1, 28), (2, 28), (4, 56), (8, 28), (8, 56), (16, 56), (32, 56), (16, 112),
                 (32, 112)]  # fmt: skip
ROWS_DENSE_COLS = [256, 384, 512, 768, 1000, 1024, 1536, 2048, 2100, 3072, 4096, 6144, 8192, 12288, 16384,
                   32768, 50304, 65536]  # fmt: skip
GROUPED_G = [4, 8, 16, 32, 64, 128]
GROUPED_TPG = [16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
GROUPED_KN = [256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192]
"""√2-ish lattices (powers of two and 1.5x them): the first recording on powers of 4 (tokens per group) and 2
(K, N) gave held-out p50 7-9% but p90 ~25%, the misses between nodes 4x apart."""
GROUPED_MAX_FLOP = 2**41


def gemm_offgrid(rng: random.Random | None = None) -> Iterator[dict]:
    rng = rng or random.Random("gemm-offgrid-fit")
    d = k1._dim
    for dtype, tf32 in k1._GEMM_VARIANTS:
        for layout in k1.GEMM_LAYOUTS:
            for _ in range(400):
                yield k1.gemm(
                    d(rng, 16, 16384, 16), d(rng, 16, 16384, 16), d(rng, 16, 16384, 16), dtype, layout, tf32
                )
    for dtype in (k1.BF16, k1.FP32):
        for _ in range(200):
            yield k1.gemm(
                d(rng, 16, 16384, 16), d(rng, 16, 16384, 16), d(rng, 16, 16384, 16), dtype, "cn", False, True
            )
    for layout in ("cc", "cn"):
        n = 0
        while n < 150:
            bt, m, nn, kk = d(rng, 1, 64, 1), d(rng, 16, 4096, 16), d(rng, 16, 4096, 16), d(rng, 16, 4096, 16)
            if bt * m * nn * kk <= 2**34:
                n += 1
                yield k1.bmm(bt, m, nn, kk, k1.BF16, layout)


def conv_dense() -> Iterator[dict]:
    for bwd in (False, True):
        for dtype, cl in ((k1.BF16, True), (k1.BF16, False), (k1.FP32, False)):
            for r, stride in k1._CONV_CFG:
                for n, hw in CONV_DENSE_NH:
                    for c in CONV_DENSE_CK:
                        for k in CONV_DENSE_CK:
                            yield k1.conv(n, c, hw, k, r, stride, dtype, cl, bwd)


def rows_dense() -> Iterator[dict]:
    for dtype in (k1.BF16, k1.FP32):
        for op in k1.ROWWISE_OPS:
            for cols in ROWS_DENSE_COLS:
                for numel in k1.BYTES_NUMEL:
                    if numel >= cols:
                        yield k1._tag(k1._rowwise(op, max(1, numel // cols), cols, dtype), op)
        for op in k1.FLAT_OPS:  # 3·4^k rows of 1024: off the power-of-two strides (transposes camp on those)
            for numel in k1.BYTES_NUMEL:
                yield k1._tag(k1._flat(op, 3 * numel, dtype), op)


def grouped(g: int, tpg: int, k: int, n: int, form: str) -> dict:
    """``_grouped_mm`` of ``g`` equal groups of ``tpg`` tokens: ``xw`` / ``xwt`` (x @ w[e], w transposed) or ``wgrad``."""
    t = g * tpg
    offs = torch.empty([g], dtype=torch.int32, device="cuda")
    if form == "wgrad":  # x^T (K, T) @ grad (T, N): the expert weight gradient
        args: tuple = (k1._t([k, t], k1.BF16, transposed=True), k1._t([t, n], k1.BF16), offs)
    else:
        args = (k1._t([t, k], k1.BF16), k1._t([g, k, n], k1.BF16, transposed=form == "xwt"), offs)
    spec = call_spec(aten._grouped_mm.default, args, {})
    offs_values = [tpg * (i + 1) for i in range(g)]
    spec["args"][2]["values"] = offs_values
    spec["family"] = "gemm"
    nbytes = 2.0 * (t * k + (k * n if form == "wgrad" else g * k * n) + t * n)
    spec["ideal_us"] = k1.ideal_us(k1.GPU, "gemm", "bfloat16", 2.0 * t * k * n, nbytes)
    spec["point"] = {"g": g, "tokens_per_group": tpg, "k": k, "n": n, "form": form,
                     "offs": offs_values}  # fmt: skip
    return spec


def grouped_grid() -> Iterator[dict]:
    for form in ("xw", "xwt", "wgrad"):
        for g in GROUPED_G:
            for tpg in GROUPED_TPG:
                for k in GROUPED_KN:
                    for n in GROUPED_KN:
                        if 2 * g * tpg * k * n <= GROUPED_MAX_FLOP:
                            yield grouped(g, tpg, k, n, form)


def grouped_heldout(rng: random.Random) -> Iterator[dict]:
    """Off-lattice grouped GEMMs: groups 4..128, tokens per group 16..4096 (log-uniform), K, N 256..8192 in
    multiples of 64, under the grid's FLOP cap; 120 per form."""
    for form in ("xw", "xwt", "wgrad"):
        n_made = 0
        while n_made < 120:
            g = rng.choice([5, 6, 8, 12, 16, 24, 32, 40, 48, 64, 96, 128])
            tpg = k1._dim(rng, 16, 4096, 8)
            k, n = k1._dim(rng, 256, 8192, 64), k1._dim(rng, 256, 8192, 64)
            if 2 * g * tpg * k * n <= GROUPED_MAX_FLOP:
                n_made += 1
                yield grouped(g, tpg, k, n, form)


def _no_heldout(rng: random.Random) -> Iterator[dict]:
    """Second-round families add fit data only: the first round's held-out sets stay the check."""
    return iter(())


FAMILIES = {
    "gemm_offgrid": (gemm_offgrid, _no_heldout),
    "conv_dense": (conv_dense, _no_heldout),
    "rows_dense": (rows_dense, _no_heldout),
    "grouped": (grouped_grid, grouped_heldout),
}
