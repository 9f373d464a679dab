"""Bytes-bound families: normalisation, softmax, reductions, elementwise, copies, foreach/fused optimizers.

Fitted on ``sweep_grid_bytes`` (bf16 and fp32, contiguous inputs):

* row-wise ops (``native_layer_norm`` and its backward, ``_fused_rms_norm``,
  ``_softmax``/``_log_softmax``/``_softmax_backward_data`` over the last dim,
  ``sum``/``mean`` over trailing dims, ``sum`` over leading dims): elements
  1k..256M (4×) × row length 256..16384 (4×); axes log(rows), log(row
  length) (an (elements, row length) lattice has impossible nodes); work proxy
  elements; variants split where PyTorch switches kernels by shape
  (:func:`_regime`);
* flat ops (``add``, ``add_``, ``mul`` by a tensor or a scalar, ``gelu``,
  ``silu`` and their backwards, full ``sum``, ``_to_copy`` to the other dtype,
  ``copy_``, ``clone`` of a transposed matrix, ``cat`` of two): elements 1k..256M
  (4×); axis log(bytes moved), work proxy bytes;
* foreach/fused optimizer ops (``_foreach_add_.List``, ``_foreach_mul_.Scalar``,
  ``_foreach_norm.Scalar``, ``_fused_adamw_``, fp32): 1..256 tensors (4×) of
  1k..16M elements (4×), at most 128M per list; axes log(tensor count),
  log(bytes), work proxy bytes.

Below the grid a kernel takes the smallest recorded point's time (the launch
floor; regime grids that start at a kernel switch follow the edge's efficiency
on that axis instead); above it, time grows with bytes at the edge's bandwidth. dtypes other
than bf16/fp32 use the grid of the same element size (fp16 → bf16; 4-byte and
larger → fp32; 1-byte → bf16), host-side copies (``@cpu``) and ops not listed
fall through to the older fit.
"""

from __future__ import annotations

import math

from profiles.families.base import FAMILY_MODELS, FamilyModel, LogGrid, Query

_ROWWISE = {
    "aten.native_layer_norm.default": "layer_norm",
    "aten.native_layer_norm_backward.default": "layer_norm_bwd",
    "aten._fused_rms_norm.default": "rms_norm",
    "aten._softmax.default": "softmax",
    "aten._log_softmax.default": "log_softmax",
    "aten._softmax_backward_data.default": "softmax_bwd",
    "aten.sum.dim_IntList": "sum",
    "aten.mean.dim": "mean",
}
_FLAT = {
    "aten.add.Tensor": "add", "aten.mul.Tensor": "mul", "aten.add_.Tensor": "add_", "aten.gelu.default": "gelu",
    "aten.gelu_backward.default": "gelu_bwd", "aten.silu.default": "silu", "aten.silu_backward.default": "silu_bwd",
    "aten.sum.default": "sum_all", "aten._to_copy.default": "to_other_dtype", "aten.copy_.default": "copy_",
    "aten.clone.default": "clone", "aten.cat.default": "cat2",
}  # fmt: skip
_FOREACH = {
    "aten._foreach_add_.List": "foreach_add_",
    "aten._foreach_mul_.Scalar": "foreach_mul_",
    "aten._foreach_norm.Scalar": "foreach_norm",
    "aten._fused_adamw_.default": "fused_adamw",
}

FAMILY_OF_VARIANT = {
    "layer_norm": "norm", "layer_norm_bwd": "norm", "rms_norm": "norm", "softmax": "softmax",
    "log_softmax": "softmax", "softmax_bwd": "softmax", "sum_last": "reduction", "sum_first": "reduction",
    "mean_last": "reduction", "sum_all": "reduction", "add": "elementwise", "mul": "elementwise",
    "add_": "elementwise", "mul_scalar": "elementwise", "gelu": "elementwise", "gelu_bwd": "elementwise",
    "silu": "elementwise", "silu_bwd": "elementwise", "to_other_dtype": "copy", "copy_": "copy",
    "clone_t": "copy", "cat2": "copy", "foreach_add_": "optimizer", "foreach_mul_": "optimizer",
    "foreach_norm": "optimizer", "fused_adamw": "optimizer",
}  # fmt: skip
"""Row of the accuracy table each variant counts in."""

_SIZE = {"float64": 8, "float32": 4, "int32": 4, "int64": 8, "bfloat16": 2, "float16": 2, "int16": 2, "bool": 1,
         "uint8": 1, "int8": 1}  # fmt: skip


def _grid_dtype(dtype: str) -> str | None:
    if "@" in dtype:
        return None
    size = _SIZE.get(dtype)
    return None if size is None else ("float32" if size >= 4 else "bfloat16")


def _dims(text: str | None, ndim: int) -> list[int] | None:
    if text is None:
        return None
    try:
        vals = [int(v) for v in text.strip("[]").split(",") if v.strip()]
    except ValueError:
        return None
    return sorted(v % ndim for v in vals) if ndim else None


def _rowwise(q: Query, name: str) -> tuple[str, float, float] | None:
    """(variant, elements, row length) of a row-wise op, or None."""
    x = q.shapes[1] if name == "layer_norm_bwd" else q.shapes[0]
    numel = math.prod(x) if x else 1
    nd = len(x)
    if name in ("layer_norm", "layer_norm_bwd", "rms_norm"):
        ns = _dims(q.flags.get("normalized_shape"), 10**9)  # sizes, not dims
        cols = math.prod(ns) if ns else 0
        return (name, numel, cols) if cols else None
    if name in ("softmax", "log_softmax", "softmax_bwd"):
        d = _dims(q.flags.get("dim"), nd)
        return (name, numel, x[-1]) if d == [nd - 1] else None
    d = _dims(q.flags.get("dim"), nd)
    if not d or nd == 0:
        return None
    red = math.prod(x[i] for i in d)
    if d == list(range(nd - len(d), nd)):
        return (f"{name}_last", numel, red)
    if d == list(range(len(d))) and name == "sum":
        return ("sum_first", numel, numel // max(red, 1))
    return None


PERSISTENT_SOFTMAX_COLS = 2048
"""PyTorch's ``host_softmax`` (aten/src/ATen/native/cuda/SoftMax.cu) runs the one-warp-per-row persistent
kernel for rows of at most 2048 elements (8 KiB) and block-per-row kernels above: two regimes with their
own grids, so that no interpolation crosses the switch."""


LN_BWD_ROWS_SPLIT = 64 * 1024
"""``LaunchGammaBetaBackwardCUDAKernel`` (aten/src/ATen/native/cuda/layer_norm_kernel.cu) splits the
γ/β-gradient reduction over rows (two kernels, up to 10x faster) when rows > 64k and
cols / 32 < SMs / 2; otherwise one block per 32 columns walks every row."""


def _regime(variant: str, rows: float, cols: float, sms: int) -> str:
    """Kernel regime of a row-wise op that PyTorch dispatches by shape ('' where it has one kernel)."""
    if variant in ("softmax", "log_softmax"):
        return "warp" if cols <= PERSISTENT_SOFTMAX_COLS else "block"
    if variant == "layer_norm_bwd":
        return "rows_split" if rows > LN_BWD_ROWS_SPLIT and int(cols) // 32 < sms // 2 else "cols"
    return ""


ELEMENTWISE = frozenset({"add", "mul", "add_", "mul_scalar", "gelu", "gelu_bwd", "silu", "silu_bwd"})
LAYOUT_FACTORS = {"noncontig": 2.29, "cast": 2.38, "broadcast": 1.76}
"""Bandwidth-part time factor of elementwise calls the grid (contiguous, same dtype, same shape) has not got:
PyTorch runs those with its strided / casting TensorIterator loops instead of the vectorised one. Fitted
(median of (real - floor) / (grid - floor)) by ``benchmarks/kernel_family_accuracy.py --fit-layout`` on the
real-program entries of ``LAYOUT_FIT_FILES``; checked on the others (docs/validation.md, issue 17)."""
LAYOUT_FIT_FILES = ("moe_generate.jsonl.gz", "sweep_bf16.jsonl", "examples.jsonl")


def layout_kinds(q: Query) -> list[str]:
    """The ways an elementwise call departs from the grid's contiguous same-dtype same-shape operands."""
    kinds = [] if all(q.contiguous) else ["noncontig"]
    if len(set(q.dtypes)) > 1:
        kinds.append("cast")
    if len({s for s in q.shapes if s}) > 1:
        kinds.append("broadcast")
    return kinds


@FAMILY_MODELS.register("bytes")
class BytesModel(FamilyModel):
    """Log-grid interpolation of memory-bound kernel time by bytes (and row length / tensor count)."""

    name = "bytes"
    ops = frozenset(_ROWWISE) | frozenset(_FLAT) | frozenset(_FOREACH)
    sms = 132
    """SM count in PyTorch's kernel choice (layer-norm backward); :class:`FamilyModels` sets the GPU's."""

    def __init__(self) -> None:
        super().__init__()
        self.layout_factors = dict(LAYOUT_FACTORS)

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        if not q.dtypes or q.bytes <= 0:
            return None
        dt = _grid_dtype(q.dtypes[0])
        if dt is None or any("@" in d for d in q.dtypes):
            return None
        if q.op in _FOREACH:
            return (_FOREACH[q.op], "float32", ""), [max(q.n_tensors, 1), q.bytes], q.bytes
        if q.op in _ROWWISE:
            r = _rowwise(q, _ROWWISE[q.op])
            if r is None:
                return None
            variant, numel, cols = r
            rows = numel / max(cols, 1)
            return (variant, dt, _regime(variant, rows, cols, self.sms)), [rows, cols], float(numel)
        name = _FLAT[q.op]
        if name == "mul" and (len(q.shapes) < 2 or q.shapes[1] == ()):
            name = "mul_scalar"
        elif name == "clone":
            name = "clone_t" if not all(q.contiguous) else "copy_"
        elif name == "copy_" and len(set(q.dtypes)) > 1:
            name = "to_other_dtype"
        return (name, dt, ""), [q.bytes], q.bytes

    def predict(self, q: Query) -> float | None:
        dur = super().predict(q)
        f = self.features(q) if dur is not None else None
        if dur is None or f is None or f[0][0] not in ELEMENTWISE:
            return dur
        factor = math.prod(self.layout_factors[k] for k in layout_kinds(q))
        g = next((self.grids[v] for v in self.variants_for(f[0]) if v in self.grids), None)
        if factor == 1.0 or g is None:
            return dur
        floor = min(g.min_dur, dur)  # the launch floor does not stretch, the bandwidth part does
        return floor + (dur - floor) * factor

    def variants_for(self, variant: tuple) -> list[tuple]:
        name, dt, regime = variant
        return [variant, (name, "float32" if dt == "bfloat16" else "bfloat16", regime)]

    def beyond(self, variant: tuple, grid: LogGrid, x: list[float]) -> list[float]:
        """A row-wise op with rows longer than the grid's longest (a vocabulary-wide log-softmax, a sum over
        the batch of a wide activation) is evaluated at the longest row length with the same element count,
        i.e. at the efficiency of the same work, not at that of a few short rows (a launch-bound node)."""
        if len(x) != 2 or variant[0] in _FOREACH.values():
            return x
        max_cols = math.exp(float(grid.nodes[1][-1]))
        return [x[0] * x[1] / max_cols, max_cols] if x[1] > max_cols * 1.001 else x

    def floor_below(self, variant: tuple) -> bool | tuple[bool, ...]:
        # rows_split starts at 64k rows and softmax's block kernels at 2049 elements: kernel switches, not floors
        return (variant[2] != "rows_split", variant[2] != "block") if variant[2] else True

    def ref_of(self, variant: tuple, x) -> float:
        if len(x) == 1:
            return float(x[0])  # bytes
        return float(x[1]) if variant[0] in _FOREACH.values() else float(x[0] * x[1])  # bytes; rows·cols
