"""What a family model sees of an op (:class:`Query`) and the model interface (the grid: :mod:`.loggrid`).

A query is built the same way from a stored profile entry (fitting, held-out
checks on the CPU) and from a live call in the simulator (replay's fallback),
so a model cannot see more at fit time than it gets at run time.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from common.registry import Registry
from profiles.compute import OpSignature
from profiles.families.loggrid import NODE_MERGE_LOG, OUTLIER_LOG_RATIO, LogGrid, merge_close
from profiles.families.offgrid import OffgridCorrection
from profiles.store import ProfileEntry

__all__ = [
    "FAMILY_MODELS",
    "NODE_MERGE_LOG",
    "OUTLIER_LOG_RATIO",
    "FamilyModel",
    "LogGrid",
    "Query",
    "half_to_bf16",
    "merge_close",
    "parse_key",
    "query_of_entry",
    "query_of_signature",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Query:
    """An op signature plus the cost figures the recorder stores with every entry."""

    op: str
    shapes: tuple[tuple[int, ...], ...]
    """Tensor shapes in argument order; empty for keys that hash their shapes (> 8 tensors)."""
    dtypes: tuple[str, ...]
    contiguous: tuple[bool, ...]
    flags: dict[str, str] = field(default_factory=dict)
    flops: float = 0.0
    bytes: float = 0.0
    n_tensors: int = 0


_FLAG_SPLIT = re.compile(r",(?![^\[]*\])")


def parse_key(
    key: str,
) -> tuple[str, tuple[tuple[int, ...], ...], tuple[str, ...], tuple[bool, ...], dict[str, str]]:
    """Inverse of :meth:`OpSignature.key` (hashed long lists give no shapes)."""
    op, shp, dts, cont, flg = (key.split("|") + [""] * 5)[:5]
    shapes: tuple[tuple[int, ...], ...] = ()
    if not shp.startswith("#"):
        shapes = (
            tuple(tuple(int(d) for d in s.split("x")) if s else () for s in shp.split(";")) if shp else ()
        )
    flags = dict(kv.split("=", 1) for kv in _FLAG_SPLIT.split(flg) if "=" in kv) if flg else {}
    return op, shapes, tuple(dts.split(",")) if dts else (), tuple(c == "c" for c in cont), flags


def query_of_entry(e: ProfileEntry) -> Query:
    op, shapes, dtypes, cont, flags = parse_key(e.key)
    return Query(op, shapes, dtypes, cont, flags, e.flops, e.bytes, e.n_tensors)


def query_of_signature(sig: OpSignature, flops: float, nbytes: float, n_tensors: int) -> Query:
    return Query(sig.op, sig.shapes, sig.dtypes, sig.contiguous, dict(sig.flags), flops, nbytes, n_tensors)


def half_to_bf16(dtype: str) -> str:
    """float16 runs the same tensor-core / bandwidth rates as bfloat16 on Hopper: share its grids."""
    return "bfloat16" if dtype == "float16" else dtype


class FamilyModel:
    """A cost model for one kernel family, fitted on recorded sweep entries.

    Subclasses set ``name`` and ``ops`` (the op overloads they may answer),
    implement :meth:`features` (variant key, grid point, work proxy of a query,
    or ``None`` where the model does not apply) and inherit fitting: one
    :class:`LogGrid` per variant over the recorded points. ``predict`` answers
    ``None`` for a query outside the model (another variant, a layout nobody
    swept), so that the caller falls through to the older fit.
    """

    name: str = ""
    ops: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.grids: dict[tuple, LogGrid] = {}
        self.offgrid = OffgridCorrection()
        """What the lattice misses between its nodes, per variant (:meth:`fit_offgrid`)."""

    def features(self, q: Query) -> tuple[tuple, list[float], float] | None:
        raise NotImplementedError

    def variants_for(self, variant: tuple) -> Iterable[tuple]:
        """Variants to try for a query's own variant, best first (override to share grids)."""
        return (variant,)

    def share(self, fitted: dict[str, FamilyModel]) -> bool:
        """Take the grids of models fitted before this one instead of fitting (a model that reuses
        another family's grids); ``True`` if it did."""
        return False

    def fit(self, entries: Iterable[ProfileEntry]) -> None:
        by: dict[tuple, tuple[list[list[float]], list[float], list[float]]] = {}
        for e in entries:
            if e.op not in self.ops or e.dur_us <= 0:
                continue
            f = self.features(query_of_entry(e))
            if f is None:
                continue
            variant, x, ref = f
            pts, durs, refs = by.setdefault(variant, ([], [], []))
            pts.append(x)
            durs.append(e.dur_us)
            refs.append(ref)
        self.grids = {v: LogGrid(*rows) for v, rows in by.items()}

    def lattice(self, q: Query) -> tuple[float, tuple, list[float]] | None:
        """The grid's answer alone: ``(dur_us, variant whose grid answered, point)``, or ``None``."""
        if q.op not in self.ops:
            return None
        f = self.features(q)
        if f is None:
            return None
        variant, x, _ = f
        for v in self.variants_for(variant):
            g = self.grids.get(v)
            if g is not None:
                return g.predict(self.beyond(v, g, x), functools.partial(self.ref_of, v), self.floor_below(v)), v, x
        return None

    def predict(self, q: Query) -> float | None:
        got = self.lattice(q)
        if got is None:
            return None
        dur, v, x = got
        return dur * self.offgrid.factor(v, x) if self.between_nodes(v, x) else dur

    def between_nodes(self, variant: tuple, x: Sequence[float]) -> bool:
        """Whether ``x`` is a shape the lattice misses, so that the off-lattice correction applies (default:
        every shape; a model whose lattice already describes some shapes exactly says so)."""
        return True

    def fit_offgrid(self, entries: Iterable[ProfileEntry]) -> None:
        """Learn what the lattice misses between its nodes from off-lattice points (``sweep_offgrid_*``):
        per answering variant, each point's log(real / lattice) at its log coordinates."""
        by: dict[tuple, tuple[list[list[float]], list[float]]] = {}
        for e in entries:
            if e.op not in self.ops or e.dur_us <= 0:
                continue
            got = self.lattice(query_of_entry(e))
            if got is None or got[0] <= 0:
                continue
            dur, v, x = got
            if not self.between_nodes(v, x):
                continue
            xs, rs = by.setdefault(v, ([], []))
            xs.append(list(x))
            rs.append(math.log(e.dur_us / dur))
        self.offgrid.fit(by)

    def beyond(self, variant: tuple, grid: LogGrid, x: list[float]) -> list[float]:
        """The point to evaluate for ``x`` (override to move points past a grid's edge onto an equal-work one)."""
        return x

    def floor_below(self, variant: tuple) -> bool | tuple[bool, ...]:
        """Whether a point below the variant's grid takes the edge's time (its launch floor; default) or the
        edge's efficiency (grids that start at a kernel switch); one flag, or one per axis."""
        return True

    def ref_of(self, variant: tuple, x: Sequence[float]) -> float:
        """Work proxy at grid point ``x`` (default: the product of the axes)."""
        return float(np.prod(x))


FAMILY_MODELS: Registry[type[FamilyModel]] = Registry("kernel family model")
"""Family model classes by name; :class:`profiles.families.FamilyModels` fits every one."""
