"""Per-family kernel cost models fitted on dense recorded sweeps (issue 17).

The replay model answers a signature it has no exact entry for from here
(``source="family"``) before its older single-efficiency fit. Each family model
(:mod:`.gemm`, :mod:`.grouped_mm`, :mod:`.attention`, :mod:`.conv`, :mod:`.bytes_bound`) is a
:class:`~profiles.families.base.FamilyModel` registered in
:data:`~profiles.families.base.FAMILY_MODELS`: one log grid per variant,
interpolated in log time/log size, fitted on the ``sweep_grid_*`` profile files
of the GPU (``profiles/data/<gpu>/``, recorded with
``benchmarks/real/kernel_sweep.sh``). The ``sweep_heldout_*`` files are never
fitted on: ``benchmarks/kernel_family_accuracy.py`` checks the models on them.

Sweep files are not loaded as exact entries by replay's default profile set
(:func:`is_sweep_file`), so exact entries and the older fit are what they were
before the sweeps; a grid point is reproduced by its model anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from profiles.families import attention, bytes_bound, conv, gemm, grouped_mm  # noqa: F401  (registration)
from profiles.families.base import FAMILY_MODELS, FamilyModel, Query, query_of_entry, query_of_signature
from profiles.families.fit_cache import load_or_fit
from profiles.gpus import get_gpu
from profiles.store import ProfileEntry, load_profiles, profile_files

__all__ = ["FAMILY_MODELS", "FamilyModel", "FamilyModels", "Query", "is_sweep_file", "query_of_entry",
           "query_of_signature", "sweep_files"]  # fmt: skip

GRID_PREFIX, HELDOUT_PREFIX = "sweep_grid_", "sweep_heldout_"
BLIND_PREFIX = "sweep_blind_"
"""Points recorded after the models were written, never looked at while writing them: a blind check."""
OFFGRID_PREFIX = "sweep_offgrid_"
"""Fit points off the lattice (random shapes): what the grid misses between its nodes, learnt as a local
correction (:meth:`FamilyModel.fit_offgrid`), never grid nodes."""


def is_sweep_file(path: str | Path) -> bool:
    """Sweep grids and held-out sets: family-model inputs and checks, not exact entries."""
    return Path(path).name.startswith((GRID_PREFIX, HELDOUT_PREFIX, BLIND_PREFIX, OFFGRID_PREFIX))


def sweep_files(folder: str | Path, prefix: str = GRID_PREFIX) -> list[Path]:
    folder = Path(folder)
    return [p for p in profile_files([folder]) if p.name.startswith(prefix)] if folder.is_dir() else []


class FamilyModels:
    """Every registered family model, fitted on the same entries; the first that answers wins.

    Fitting the shipped H200 grids takes a few seconds (18k entries), so
    :meth:`from_folder` defers it to the first :meth:`predict`: a run whose
    signatures all have exact entries never pays it.
    """

    def __init__(self, entries: Iterable[ProfileEntry] | None = None, *, files: list[Path] | None = None,
                 gpu: str | None = None, offgrid: Iterable[ProfileEntry] | None = None,
                 offgrid_files: list[Path] | None = None) -> None:  # fmt: skip
        self._rows = list(entries) if entries is not None else None
        self._off = list(offgrid) if offgrid is not None else None
        self._files, self._off_files, self._gpu = files or [], offgrid_files or [], gpu
        self._models: list[FamilyModel] | None = None

    @classmethod
    def from_folder(cls, folder: str | Path, gpu: str) -> FamilyModels:
        """Fitted (lazily) on the ``sweep_grid_*`` files of ``folder``, corrected between nodes by its
        ``sweep_offgrid_*`` files; no grids there: models that answer nothing."""
        return cls(files=sweep_files(folder), gpu=gpu, offgrid_files=sweep_files(folder, OFFGRID_PREFIX))

    def _load(self, files: list[Path]) -> list[ProfileEntry]:
        # file by file: a key recorded by two sweeps stays twice, and the grid keeps the faster one
        return [e for f in files for e in load_profiles([f], gpu=self._gpu)[0].values()]

    @property
    def models(self) -> list[FamilyModel]:
        if self._models is None:
            if self._rows is None and self._off is None and self._files:  # shipped files: fitted once per machine
                self._models = load_or_fit([*self._files, *self._off_files], self._gpu, self._fit)
            else:
                self._models = self._fit()
            self._rows = self._off = None
        return self._models

    def _fit(self) -> list[FamilyModel]:
        rows = self._rows if self._rows is not None else self._load(self._files)
        off = self._off if self._off is not None else self._load(self._off_files)
        models: list[FamilyModel] = []
        fitted: dict[str, FamilyModel] = {}
        for name in FAMILY_MODELS:
            m = FAMILY_MODELS.get(name)()
            if self._gpu is not None and hasattr(m, "sms"):  # models that count waves over the SMs
                m.sms = get_gpu(self._gpu).sm_count
            if not m.share(fitted):
                m.fit(rows)
                m.fit_offgrid(off)
            fitted[m.name] = m
            if m.grids:
                models.append(m)
        return models

    def predict(self, q: Query) -> tuple[float, str] | None:
        """``(dur_us, model name)`` or ``None`` where no family model covers the query."""
        if not self._files and self._rows is None and self._models is None:
            return None
        for m in self.models:
            if q.op in m.ops:
                dur = m.predict(q)
                if dur is not None:
                    return dur, m.name
        return None
