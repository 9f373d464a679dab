"""The ``replay`` compute model: measured kernel timings first, a calibrated model for the rest.

Lookup order for an op signature:

1. the profile files (``profiles`` option; default: the shipped ones for the
   simulated GPU under ``profiles/data/<gpu>/``) — ``source="profile"``;
   (a flash-attention call also matches its measured cuDNN-attention twin,
   see :func:`equivalent_keys`);
2. the local cache (``cache`` option, a SQLite file shared by all ranks), which
   holds entries profiled on demand — also ``source="profile"``;
3. if ``on_demand`` and a CUDA GPU is present: time the op now on random inputs
   of the same shapes, add it to the cache — ``source="profile"``;
4. the per-family cost models fitted on the recorded sweeps (:mod:`profiles.families`;
   GEMM, attention, convolution, bytes-bound ops) — ``source="family"``;
5. the fitted model: ``overhead + roofline_ideal / efficiency`` fitted to the
   loaded profiles' own measurements — of the same op and compute dtype where
   there are at least 3, else of the op's family (matmul, attention, reduction,
   copy, optimizer, elementwise) and dtype, else of the family —
   ``source="fitted"``; the plain roofline where nothing fits —
   ``source="roofline"``.

Ops that launch no kernel get ``source="none"``. Signatures answered by 3-5
are kept with a replayable argument spec: :meth:`ReplayModel.missing_signatures`
and :meth:`ReplayModel.write_missing` give them to ``phantora profile --kernels-only``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from profiles.compute import COMPUTE_MODELS, ComputeModel, OpSignature, OpTiming
from profiles.cost import family_of, ideal_us, op_bytes, op_flops, tensors_of
from profiles.families import FamilyModels, is_sweep_file, query_of_signature
from profiles.gpus import GpuSpec
from profiles.host_api import new_shape_us
from profiles.roofline import RooflineModel, is_kernel_free
from profiles.store import ProfileEntry, load_profiles, profile_files

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Shipped profiles: ``profiles/data/<gpu key>/*.jsonl[.gz]``."""

MIN_FIT_ENTRIES = 3
EXTRAPOLATION_LIMIT = 10.0
"""A fit answers only for work up to this multiple of the largest ideal time it was fitted on."""


@dataclass(frozen=True, slots=True)
class FamilyFit:
    """``dur_us = overhead_us + ideal_us / efficiency + per_tensor_us * n_tensors`` for one family."""

    overhead_us: float
    efficiency: float
    per_tensor_us: float
    n: int
    median_rel_err: float
    """Median |fit - measured| / measured over the entries it was fitted to."""
    max_ideal_us: float = float("inf")
    """Largest roofline-ideal time in the fit set: :meth:`FitTable.predict` uses the fit only up to
    ``EXTRAPOLATION_LIMIT`` times that (a fit on 100-element norms said 33 ms for an 8M-element one)."""

    def predict(self, ideal: float, n_tensors: int) -> float:
        return self.overhead_us + ideal / self.efficiency + self.per_tensor_us * n_tensors


PER_SHAPE_PLANS = frozenset({"matmul", "attention"})
"""Op families that pay their first-call cost for every new shape: cuBLAS picks an algorithm per GEMM
shape (an ``mm`` on an unseen row count costs 286 us of host time against 27 us seen), cuDNN builds an
attention or convolution graph per shape (37-60 ms per new KV length in decoding). Every other op pays
nothing more for a new shape (``mul``, ``silu``, ``index``, ``index_select``, ``index_add_``,
``index_put_``, ``sum``, ``cat``, ``to``: new and seen within 10%; ``benchmarks/real/shape_novelty_costs.py``,
H200 host, 2026-12-03), so its recorded first-call extra (kernel loading, the recorder's own first-sight
work) is charged once per op. An unrecorded new shape of a plan op after its first pays the measured
warm premium where there is one (:func:`profiles.host_api.new_shape_us`), else the recorded median.
Measured, not fitted."""


def compute_dtype(key: str, dtype: str) -> str:
    """dtype that picks the peak rate: ``tf32`` for fp32 matmuls keyed with the TF32 switch on."""
    return "tf32" if key.endswith("tf32=True") else dtype


def fit_family(gpu: GpuSpec, entries: list[ProfileEntry]) -> FamilyFit | None:
    """Fit ``FamilyFit`` to measured entries: least absolute relative error (IRLS), coefficients >= 0.

    Relative error, so that microsecond kernels count as much as millisecond
    ones; absolute rather than squared, so that a few odd kernels in a family
    (e.g. ops whose nominal inputs are not all read) do not drag the fit.
    """
    if len(entries) < MIN_FIT_ENTRIES:
        return None
    ideal = np.array([ideal_us(gpu, e.family, compute_dtype(e.key, e.dtype), e.flops, e.bytes) for e in entries])
    ntens = np.array([float(e.n_tensors) for e in entries])
    y = np.array([max(e.dur_us, 1e-3) for e in entries])
    cols = {"overhead": np.ones_like(y), "ideal": ideal}
    if ntens.std() > 0 and entries[0].family == "optimizer":
        cols["tensors"] = ntens
    active = list(cols)
    coef: dict[str, float] = {}
    w = np.ones_like(y)
    for _ in range(30):
        a = np.stack([cols[c] for c in active], axis=1) / y[:, None]
        sol, *_ = np.linalg.lstsq(a * w[:, None], w, rcond=None)
        coef = dict(zip(active, sol.tolist(), strict=True))
        neg = [c for c in active if coef[c] < 0]
        if neg and len(active) > 1:
            active.remove(min(neg, key=lambda c: coef[c]))
            coef = {}
            continue
        w = 1.0 / np.sqrt(np.maximum(np.abs(a @ sol - 1.0), 1e-3))
    slope = max(coef.get("ideal", 0.0), 0.0)
    eff = 1.0 / slope if slope > 0 else 1e9  # times do not grow with work: a constant is the best we know
    fit = FamilyFit(max(coef.get("overhead", 0.0), 0.0), eff, max(coef.get("tensors", 0.0), 0.0), len(entries), 0.0)
    pred = np.array([fit.predict(i, int(n)) for i, n in zip(ideal, ntens, strict=True)])
    err = float(np.median(np.abs(pred - y) / y))
    return FamilyFit(fit.overhead_us, fit.efficiency, fit.per_tensor_us, len(entries), err, float(ideal.max()))


class FitTable:
    """Fits at three levels, most specific first: (op, compute dtype), (family, compute dtype), family."""

    def __init__(self, gpu: GpuSpec, entries: dict[str, ProfileEntry]) -> None:
        self.gpu = gpu
        groups: dict[tuple[str, ...], list[ProfileEntry]] = {}
        for e in entries.values():
            cd = compute_dtype(e.key, e.dtype)
            levels: tuple[tuple[str, ...], ...] = (("op", e.op, cd), ("family", e.family, cd), ("family", e.family))
            for g in levels:
                groups.setdefault(g, []).append(e)
        self.fits: dict[tuple[str, ...], FamilyFit] = {}
        for g, es in groups.items():
            f = fit_family(gpu, es)
            if f is not None:
                self.fits[g] = f

    def predict(
        self, op: str, family: str, cdtype: str, flops: float, nbytes: float, n_tensors: int
    ) -> float | None:
        ideal = ideal_us(self.gpu, family, cdtype, flops, nbytes)
        for g in (("op", op, cdtype), ("family", family, cdtype), ("family", family)):
            fit = self.fits.get(g)
            if fit is not None and ideal <= EXTRAPOLATION_LIMIT * fit.max_ideal_us:
                return fit.predict(ideal, n_tensors)
        return None

    def predict_entry(self, e: ProfileEntry) -> float | None:
        """What the fallback would answer for a signature like ``e`` (for held-out validation)."""
        return self.predict(e.op, e.family, compute_dtype(e.key, e.dtype), e.flops, e.bytes, e.n_tensors)


_FLASH_FWD = "aten._scaled_dot_product_flash_attention.default"
_FLASH_BWD = "aten._scaled_dot_product_flash_attention_backward.default"
_CUDNN_FWD = "aten._scaled_dot_product_cudnn_attention.default"
_CUDNN_BWD = "aten._scaled_dot_product_cudnn_attention_backward.default"


_TWIN_OP = {_FLASH_FWD: _CUDNN_FWD, _FLASH_BWD: _CUDNN_BWD}
"""Op whose fitted model answers for an unseen signature of the key op (same work, the kernel a real GPU runs)."""


def equivalent_keys(sig: OpSignature) -> list[str]:
    """Keys of the kernels a real GPU may run instead of ``sig`` for the same SDPA call.

    PyTorch 2.11 on H100/H200 sends bf16/fp16 SDPA to cuDNN attention where the
    shim (like older PyTorch) picks flash attention: same inputs, same work, a
    different aten op. A missed flash signature is looked up as its cuDNN twin.
    """
    flags = dict(sig.flags)
    if sig.op == _FLASH_FWD and len(sig.shapes) >= 3:
        causal = flags.get("is_causal", "False")
        head = (sig.shapes[:3], sig.dtypes[:3], sig.contiguous[:3])
        return [
            OpSignature(_CUDNN_FWD, *head, (("compute_log_sumexp", lse), ("is_causal", causal))).key()
            for lse in ("True", "False")
        ]
    if sig.op == _FLASH_BWD and len(sig.shapes) >= 6:
        shapes = (*sig.shapes[:5], (*sig.shapes[5], 1), (), ())
        dtypes = (*sig.dtypes[:6], "int64", "int64")
        cont = (*sig.contiguous[:6], True, True)
        keep = tuple((k, flags[k]) for k in ("max_q", "max_k", "is_causal") if k in flags)
        return [OpSignature(_CUDNN_BWD, shapes, dtypes, cont, keep).key()]
    return []


def steady_host_costs(
    entries: dict[str, ProfileEntry], headers: list, origins: dict[str, int]
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per op name, from profiles recorded with ``launch_method: steady`` only: the median host
    cost a running program pays per call (``launch_us`` minus the header's ``launch_offset_us``,
    the recorder's own way of calling the op) and the median extra cost of a signature's first
    call (``first_call_us - launch_us``: per-shape plans, lazy loading). Ops only in older
    profiles are absent (their ``launch_us`` holds first-call costs already). Third, the median
    recorded Python time before a call (``host_gap_us``, every profile)."""
    launch: dict[str, list[float]] = {}
    first: dict[str, list[float]] = {}
    gaps: dict[str, list[float]] = {}
    for key, e in entries.items():
        if e.host_gap_us is not None:  # measured the same way by every recorder version
            gaps.setdefault(e.op, []).append(e.host_gap_us)
        extra = headers[origins[key]].extra if key in origins else {}
        if extra.get("launch_method") != "steady" or e.launch_us <= 0:
            continue
        launch.setdefault(e.op, []).append(max(0.5, e.launch_us - float(extra.get("launch_offset_us", 0.0))))
        if e.first_call_us is not None:
            first.setdefault(e.op, []).append(max(0.0, e.first_call_us - e.launch_us))
    med = {op: float(np.median(v)) for op, v in launch.items()}
    return med, {op: float(np.median(v)) for op, v in first.items()}, {op: float(np.median(v)) for op, v in gaps.items()}


def op_launch_us(entries: dict[str, ProfileEntry]) -> dict[str, float]:
    """Median ``launch_us`` per op name over its measured signatures.

    One signature's launch time comes from its few warm-up calls and carries
    first-call costs (cuBLAS heuristics, allocator growth) that vary from run to
    run; the per-op median is stable. On the shipped H100/H200 data it keeps
    trace replays of 14 real runs within 5% where per-entry values miss by up to 12%
    (docs/validation.md).
    """
    by: dict[str, list[float]] = {}
    for e in entries.values():
        if e.launch_us > 0:
            by.setdefault(e.op, []).append(e.launch_us)
    return {op: float(np.median(v)) for op, v in by.items()}


@COMPUTE_MODELS.register("replay")
class ReplayModel(ComputeModel):
    """Replays measured kernel timings (see module doc for the lookup order)."""

    def __init__(
        self,
        gpu: GpuSpec,
        *,
        profiles: list[str | Path] | str | Path | None = None,
        cache: str | Path | None = None,
        on_demand: bool = False,
        host_gap: float = 0.0,
        host_gap_from: str = "op",
        launch: str = "op-median",
        default_launch_us: float | None = None,
    ) -> None:
        """
        Args:
            profiles: profile files or directories (later wins per key); default ``profiles/data/<gpu>/``.
            cache: SQLite cache path for on-demand entries, or ``None`` for none.
            on_demand: time missing signatures on the local GPU (needs CUDA) and add them to the cache.
            host_gap: add this multiple of the recorded programs' median Python time before each
                op (``host_gap_us``, per op name over steady-recorded profiles; the recorder's own
                cost subtracted) to its launch cost: the target host's per-op framework time
                replayed instead of measured here (0: off, the default).
            host_gap_from: ``op`` (default: the per-op-name median over every recorded program) or
                ``entry`` (an exact entry's own recorded ``host_gap_us``, the op median for the rest): the
                framework time of a recorded program is then its own, not the median program's.
            launch: ``op-median`` (default; see :func:`op_launch_us`) or ``entry`` (each signature's own).
            default_launch_us: launch overhead for ops with no entry; default the profile's median.
        """
        super().__init__(gpu)
        if profiles is None:
            # sweep grids/held-out sets feed the family models, not the exact entries (profiles.families)
            shipped = list(profile_files([DATA_DIR / gpu.key])) if (DATA_DIR / gpu.key).exists() else []
            paths: list[str | Path] = [p for p in shipped if not is_sweep_file(p)]
            strict = False
        else:
            paths = [profiles] if isinstance(profiles, str | Path) else list(profiles)
            strict = True
        origins: dict[str, int] = {}
        self.entries, self.headers = load_profiles(paths, gpu=gpu.key, strict=strict, origins=origins)
        benches = [float(b) for h in self.headers if (b := h.extra.get("host_bench_us"))]
        self.host_bench_us: float | None = float(np.median(benches)) if benches else None
        """The recording hosts' CPU speed (:mod:`profiles.hostbench`), for the host-time model."""
        self.cache = None
        if cache is not None:
            from profiles.cache import ProfileCache

            self.cache = ProfileCache(cache)
            for k, e in self.cache.entries(gpu.key).items():
                self.entries.setdefault(k, e)
        if launch not in ("op-median", "entry"):
            raise ValueError(f"replay option launch must be 'op-median' or 'entry', got {launch!r}")
        if host_gap_from not in ("op", "entry"):
            raise ValueError(f"replay option host_gap_from must be 'op' or 'entry', got {host_gap_from!r}")
        self.host_gap_from = host_gap_from
        self.on_demand = on_demand
        self.host_gap = host_gap
        self.launch = launch
        steady, self._op_first, self._op_gap = steady_host_costs(self.entries, self.headers, origins)
        self._first_paid: set[str] = set()
        """Ops whose first signature this process has charged (the cold first call: lazy kernel loading,
        library handles; the recorded medians are mostly such calls, e.g. 2.8 ms for ``mm``)."""
        self._new_shape_us = new_shape_us(gpu.key)
        """The warm new-shape premium where measured (``mm``: 260 us), for unrecorded signatures after the
        op's first (:func:`profiles.host_api.new_shape_us`)."""
        self._op_launch = op_launch_us(self.entries) | steady
        self.fits = FitTable(gpu, self.entries)
        self.families = FamilyModels.from_folder(DATA_DIR / gpu.key, gpu.key)
        launches = [e.launch_us for e in self.entries.values() if e.launch_us > 0]
        if default_launch_us is None:
            default_launch_us = float(np.median(launches)) if launches else 6.0
        self.default_launch_us = default_launch_us
        self._roofline = RooflineModel(gpu, launch_overhead_us=default_launch_us)
        self.launch_overhead_us = default_launch_us
        """Launch cost for copies the shim models itself (it reads this attribute)."""
        self._missing: dict[str, dict[str, Any]] = {}

    # -- lookup --------------------------------------------------------------------------------
    def measure_script_time(self) -> None:
        """This machine's measured script time stands in for the replayed per-op framework time."""
        self.host_gap = 0.0

    def _launch_of(self, op: str, entry_launch_us: float = 0.0) -> float:
        if self.launch == "entry" and entry_launch_us > 0:
            return entry_launch_us
        return self._op_launch.get(op) or entry_launch_us or self.default_launch_us

    def _host(self, op: str, entry: ProfileEntry | None = None) -> tuple[float, float]:
        """Host costs of one call of ``op``: launch (plus the replayed framework gap, ``host_gap``) and
        the extra of a signature's first call (its own measurement when recorded, else the op's median),
        for ops that build a plan per shape; for the rest only the op's first signature in the process
        pays it (:data:`PER_SHAPE_PLANS`)."""
        launch = self._launch_of(op, entry.launch_us if entry is not None else 0.0)
        own = entry.host_gap_us if self.host_gap_from == "entry" and entry is not None else None
        launch += self.host_gap * (own if own is not None else self._op_gap.get(op, 0.0))
        paid = op in self._first_paid
        self._first_paid.add(op)
        if paid and family_of(op) not in PER_SHAPE_PLANS:
            return launch, 0.0
        if entry is not None and entry.first_call_us is not None:
            return launch, max(0.0, entry.first_call_us - entry.launch_us)
        if paid and op in self._new_shape_us:  # a warm process's new shape
            return launch, self._new_shape_us[op]
        return launch, self._op_first.get(op, 0.0)

    def _timing(self, e: ProfileEntry) -> OpTiming:
        return OpTiming(e.dur_us, "profile", *self._host(e.op, e))

    def time_signature(
        self, sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any
    ) -> OpTiming:
        if is_kernel_free(func):
            return OpTiming(0.0, "none", 0.0)
        key = sig.key()
        e = self.entries.get(key)
        if e is None:
            e = next((self.entries[k] for k in equivalent_keys(sig) if k in self.entries), None)
        if e is None and self.cache is not None:
            e = self.cache.get(self.gpu.key, key)  # another rank may have profiled it meanwhile
        if e is None and self.on_demand and torch.cuda.is_available():
            e = self._profile_now(func, args, kwargs)
        if e is not None:
            self.entries[key] = e
            return self._timing(e)
        return self._fallback(sig, func, args, kwargs, out)

    def _fallback(
        self, sig: OpSignature, func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any
    ) -> OpTiming:
        from profiles.argspec import call_spec

        family = family_of(sig.op)
        spec = call_spec(func, args, kwargs)
        spec["family"] = family
        outs = tensors_of(out)
        dtype = sig.dtypes[0] if sig.dtypes else (str(outs[0].dtype).removeprefix("torch.") if outs else "")
        cdtype = compute_dtype(spec["key"], dtype)
        fam = self.families.predict(
            query_of_signature(sig, op_flops(func, args, kwargs, out), op_bytes(args, kwargs, out), len(sig.shapes) + len(outs))
        )
        if fam is not None:
            spec["dur_us"] = fam[0]
            self._missing[spec["key"]] = spec
            return OpTiming(fam[0], "family", *self._host(sig.op))
        dur = self.fits.predict(
            _TWIN_OP.get(sig.op, sig.op), family, cdtype, op_flops(func, args, kwargs, out), op_bytes(args, kwargs, out), len(sig.shapes) + len(outs)
        )
        if dur is None:
            t = self._roofline.time_signature(sig, func, args, kwargs, out)
            spec["dur_us"] = t.dur_us
            self._missing[spec["key"]] = spec
            launch, first = self._host(sig.op)
            return replace(t, launch_us=launch if sig.op in self._op_launch else t.launch_us, first_us=first)
        spec["dur_us"] = dur
        self._missing[spec["key"]] = spec
        return OpTiming(dur, "fitted", *self._host(sig.op))

    def _profile_now(self, func, args, kwargs) -> ProfileEntry | None:
        """Time this signature on the local GPU with random inputs of the same shapes; cache it."""
        from torch.utils._python_dispatch import _disable_current_modes

        from profiles.argspec import call_spec
        from profiles.recorder import profile_specs

        spec = call_spec(func, args, kwargs)
        with _disable_current_modes():
            entries, _failures = profile_specs([spec], device="cuda")
        if not entries:
            return None
        if self.cache is not None:
            self.cache.put(self.gpu.key, entries[0])
        return entries[0]

    # -- reporting -----------------------------------------------------------------------------
    def missing_signatures(self) -> list[dict[str, Any]]:
        """Call specs (JSON-able) of every signature not found in the profiles, sorted by key."""
        return [self._missing[k] for k in sorted(self._missing)]

    def write_missing(self, path: str | Path) -> int:
        """Write :meth:`missing_signatures` as JSON Lines (input of ``phantora profile --kernels-only``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.missing_signatures()
        with open(path, "w", encoding="utf-8") as f:
            for spec in rows:
                f.write(json.dumps(spec, separators=(",", ":")) + "\n")
        return len(rows)
