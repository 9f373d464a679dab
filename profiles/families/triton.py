"""Fused Triton kernels that Inductor generates: the key they are recorded under, and a bytes model.

A key must be the same on the GPU that records a compiled program and on the machine that simulates
it, across Triton and (minor) torch versions, so it is built from what Inductor decides, not from
its generated source: the kernel name without its per-graph index (``triton_poi_fused_add_mul``:
the kind, pointwise/reduction/persistent reduction, and the fused aten ops), the loop sizes the
launch passes (``xnumel``, ``r0_numel``, ...) and the pointer arguments' dtypes.

Unseen keys take :class:`TritonBytesModel`: time = floor + bytes moved / effective bandwidth,
one (floor, bandwidth) pair per kind, where bytes moved is the sum of the tensor arguments' sizes
(each read or written once: exact for the plain pointwise/reduction kernels, an overestimate where
a kernel reads a broadcast operand's small tensor many times from cache, an underestimate where
it re-reads a large one). :func:`fit` fits the pairs on recorded kernels (``fit`` split) and
reports the held-out error; the constants in :data:`DEFAULT_PARAMS` are labelled ``assumed``.
This module does not import torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_INDEX = re.compile(r"_\d+$")
KINDS = {"poi": "pointwise", "red": "reduction", "per": "persistent_reduction", "tem": "template",
         "for": "foreach", "mix": "mix_order_reduction", "spl": "split_scan"}  # fmt: skip


def family_name(kernel_name: str) -> str:
    """``triton_poi_fused_add_mul_3`` -> ``triton_poi_fused_add_mul``."""
    return _INDEX.sub("", kernel_name)


def kind_of(kernel_name: str) -> str:
    parts = kernel_name.split("_")
    return KINDS.get(parts[1], "other") if len(parts) > 1 and parts[0] == "triton" else "other"


def kernel_key(kernel_name: str, numels: Mapping[str, int], dtypes: Sequence[str]) -> str:
    """``triton_poi_fused_add_mul|xnumel=1048576|fp32,fp32,fp32``: see the module docstring."""
    sizes = ",".join(f"{k}={v}" for k, v in sorted(numels.items()))
    return f"{family_name(kernel_name)}|{sizes}|{','.join(dtypes)}"


def launch_key(kernel_name: str, params: Sequence[tuple[str, str]], args: Sequence[object]) -> tuple[str, int]:
    """(key, bytes moved) of one launch: ``params`` are the kernel's runtime parameters (name, Triton
    signature type, constexprs left out) in order, ``args`` the launch's arguments. Tensors are duck-typed
    (``numel()``/``element_size()``): the GPU recorder and the simulator share this function."""
    numels: dict[str, int] = {}
    dtypes: list[str] = []
    nbytes = 0
    for (p, ty), a in zip(params, args, strict=False):
        if hasattr(a, "element_size"):
            nbytes += a.numel() * a.element_size()  # type: ignore[attr-defined]
            dtypes.append(ty.lstrip("*"))
        elif p.endswith("numel") and isinstance(a, int):
            numels[p] = a
    return kernel_key(kernel_name, numels, dtypes), nbytes


@dataclass(frozen=True, slots=True)
class KindParams:
    floor_us: float
    """Fixed cost of a kernel of this kind (ramp-up and tail), µs."""
    bandwidth_gbps: float
    """Effective bytes moved per second, GB/s."""
    source: str = "assumed"
    """``assumed`` or ``fit:<file>`` (recorded kernels it was fitted on)."""


DEFAULT_PARAMS = KindParams(floor_us=3.0, bandwidth_gbps=3000.0)
"""Assumed (not fitted) for a GPU without recordings: an H100/H200-class launch tail and ~70% of HBM3."""


class TritonBytesModel:
    """Time of a fused kernel from its bytes moved; see the module docstring."""

    def __init__(self, params: Mapping[str, KindParams] | None = None) -> None:
        self.params = dict(params or {})

    def predict(self, kernel_name: str, nbytes: int) -> tuple[float, str]:
        p = self.params.get(kind_of(kernel_name)) or self.params.get("other") or DEFAULT_PARAMS
        return p.floor_us + nbytes / (p.bandwidth_gbps * 1e3), p.source


def fit(rows: Iterable[Mapping], source: str) -> dict[str, KindParams]:
    """Per kind, ``t = floor + bytes / bandwidth`` by least squares on the relative error (each kernel
    counts the same, small or large). Rows: ``kernel``, ``bytes``, ``us``."""
    by_kind: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if float(r["us"]) > 0:
            by_kind.setdefault(kind_of(r["kernel"]), []).append((int(r["bytes"]), float(r["us"])))
    out: dict[str, KindParams] = {}
    for kind, pts in by_kind.items():
        # minimise sum(((a + b x) / t - 1)^2): normal equations of u = 1/t, v = x/t against 1
        suu = sum(1 / t**2 for _, t in pts)
        suv = sum(x / t**2 for x, t in pts)
        svv = sum((x / t) ** 2 for x, t in pts)
        su, sv = sum(1 / t for _, t in pts), sum(x / t for x, t in pts)
        det = suu * svv - suv * suv
        if len(pts) < 2 or det <= 0:
            continue
        a, b = (su * svv - sv * suv) / det, (suu * sv - suv * su) / det
        if a <= 0 or b <= 0:
            continue
        out[kind] = KindParams(floor_us=a, bandwidth_gbps=1 / (b * 1e3), source=f"fit:{source}")
    return out


def error_pct(model: TritonBytesModel, rows: Iterable[Mapping]) -> list[float]:
    """Signed % error of the model on recorded rows (``kernel``, ``bytes``, ``us``)."""
    return [100.0 * (model.predict(r["kernel"], int(r["bytes"]))[0] / float(r["us"]) - 1.0)
            for r in rows if float(r["us"]) > 0]  # fmt: skip


class CompiledKernelProfiles:
    """Recorded fused kernels of one GPU: ``profiles/data/<gpu>/compiled_kernels*.ndjson`` rows (JSON lines; not ``.jsonl``, which replay loads as op profiles)
    ``{"key", "kernel", "bytes", "us", "split"}``. ``split``: ``fit`` (the size sweep the bytes model is
    fitted on; also exact entries), ``program`` (a recorded program's kernels: exact entries only) or
    ``heldout`` (never used here: the bytes model's check, ``benchmarks/compile_kernel_accuracy.py``).
    Exact keys answer with ``source="profile"`` (median of the recorded launches)."""

    def __init__(self, rows: Iterable[Mapping], source: str = "") -> None:
        rows = [r for r in rows if r.get("split", "fit") != "heldout"]
        groups: dict[str, list[float]] = {}
        for r in rows:
            groups.setdefault(r["key"], []).append(float(r["us"]))
        self.exact = {k: sorted(v)[len(v) // 2] for k, v in groups.items()}
        fit_rows = [r for r in rows if r.get("split", "fit") == "fit"]
        self.model = TritonBytesModel(fit(fit_rows, source) if fit_rows else None)

    @classmethod
    def for_gpu(cls, gpu_key: str, root: Path | None = None) -> CompiledKernelProfiles:
        folder = (root or Path(__file__).resolve().parent.parent / "data") / gpu_key
        files = sorted(folder.glob("compiled_kernels*.ndjson")) if folder.is_dir() else []
        rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
        return cls(rows, ",".join(f.name for f in files))

    def time(self, key: str, kernel_name: str, nbytes: int) -> tuple[float, str]:
        """(µs, source): ``profile`` for a recorded key, else ``family`` (the bytes model; its constants'
        own source is in :attr:`model`)."""
        us = self.exact.get(key)
        if us is not None:
            return us, "profile"
        t, _ = self.model.predict(kernel_name, nbytes)
        return t, "family"


def mean_abs(xs: Sequence[float]) -> float:
    return sum(abs(x) for x in xs) / len(xs) if xs else math.nan
