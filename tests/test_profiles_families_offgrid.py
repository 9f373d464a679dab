"""Family-model mechanisms for fit data off a single lattice (issue 17, session 10): interpolation along an
axis between nodes another sweep added, the fastest of repeated recordings, and the off-lattice correction.
Synthetic laws only; no timing thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from profiles.families import FamilyModels, is_sweep_file
from profiles.families.base import LogGrid, query_of_entry
from profiles.families.gemm import GemmModel
from profiles.families.offgrid import OFFGRID_NEIGHBOURS
from profiles.store import ProfileEntry


def _ln_entry(rows: int, cols: int, us: float) -> ProfileEntry:
    key = f"aten.native_layer_norm.default|{rows}x{cols};{cols};{cols}|bfloat16|ccc|normalized_shape=[{cols}]"
    return ProfileEntry(key=key, op="aten.native_layer_norm.default", family="norm", dtype="bfloat16",
                        bytes=4.0 * rows * cols, n_tensors=3, dur_us=us)  # fmt: skip


def test_rows_of_a_denser_row_length_ladder_are_interpolated_along_their_own_rows():
    # made-up law, log-linear in rows per row length: time = a(cols) * rows^0.8. Each row length has its own
    # row counts (elements on 4x steps / cols), so most lattice cells along the rows axis are empty.
    def law(rows: float, cols: float) -> float:
        return (cols / 256) ** 0.5 * rows**0.8

    pts, durs = [], []
    for cols in (256, 384, 1024):
        for numel in (2**14, 2**16, 2**18, 2**20):
            rows = numel // cols
            pts.append((rows, cols))
            durs.append(law(rows, cols))
    g = LogGrid(pts, durs, [r * c for r, c in pts])
    # a row count recorded only for other row lengths: read off this row length's own rows (the law exactly
    # on the lattice's log-linear segments), not a neighbour mean across row lengths
    rows_of_256 = 2**16 // 256  # 256 rows: a node, but not one that cols = 384 recorded
    got = g.predict([rows_of_256, 384], lambda x: x[0] * x[1])
    assert got == pytest.approx(law(rows_of_256, 384), rel=1e-6)


def test_a_point_recorded_twice_keeps_the_faster_measurement():
    pts = [(r, c) for r in (4, 64, 1024) for c in (256, 1024)]
    durs = [5.0 + r * c / 1e4 for r, c in pts]
    slow = (64, 256)
    g = LogGrid([*pts, slow], [*durs, 31.5], [r * c for r, c in [*pts, slow]])
    assert g.predict(slow, lambda x: x[0] * x[1]) == pytest.approx(durs[pts.index(slow)], rel=1e-9)
    # the same through FamilyModels: one key in two sweep files (two entries, not the later file's alone)
    slow_entry, fast_entry = _ln_entry(64, 256, 31.5), _ln_entry(64, 256, 5.0)
    rows = [_ln_entry(r, c, 5.0 + r * c / 1e4) for r, c in pts if (r, c) != slow]
    fm = FamilyModels([*rows, fast_entry, slow_entry])
    assert fm.predict(query_of_entry(slow_entry))[0] == pytest.approx(5.0, rel=1e-9)


def _mm(m: int, n: int, k: int, us: float) -> ProfileEntry:
    key = f"aten.mm.default|{m}x{k};{k}x{n}|bfloat16,bfloat16|cc|"
    return ProfileEntry(key=key, op="aten.mm.default", family="matmul", dtype="bfloat16", flops=2.0 * m * n * k,
                        n_tensors=3, dur_us=us)  # fmt: skip


def _lattice_rows() -> list[ProfileEntry]:
    dims = [256, 512, 1024, 2048, 4096, 8192]
    return [_mm(m, n, k, m * n * k * 1e-9) for m in dims for n in dims for k in dims]


def test_off_lattice_points_correct_the_lattice_where_they_lie_and_nowhere_else():
    rng = np.random.default_rng(3)
    # off-lattice shapes in the small corner (M, N, K < 1024) run 25% slower than the law the lattice follows
    off = []
    for _ in range(60):
        m, n, k = (int(v) // 16 * 16 for v in np.exp(rng.uniform(math.log(300), math.log(1000), 3)))
        off.append(_mm(m, n, k, 1.25 * m * n * k * 1e-9))
    for _ in range(60):
        m, n, k = (int(v) // 16 * 16 for v in np.exp(rng.uniform(math.log(3000), math.log(8000), 3)))
        off.append(_mm(m, n, k, m * n * k * 1e-9))
    fm = FamilyModels(_lattice_rows(), offgrid=off)
    small, large = _mm(608, 528, 704, 0.0), _mm(4992, 4000, 6000, 0.0)
    assert fm.predict(query_of_entry(small))[0] == pytest.approx(1.25 * 608 * 528 * 704 * 1e-9, rel=1e-6)
    assert fm.predict(query_of_entry(large))[0] == pytest.approx(4992 * 4000 * 6000 * 1e-9, rel=1e-6)
    plain = FamilyModels(_lattice_rows())  # no off-lattice points: the lattice's answer
    assert plain.predict(query_of_entry(small))[0] == pytest.approx(608 * 528 * 704 * 1e-9, rel=1e-6)
    # shapes the correction has no points of keep the lattice's answer even among slow neighbours: aligned
    # widths (multiples of 128) and dimensions that are not multiples of 16 (a token count)
    for m, n, k in ((640, 512, 768), (600, 520, 700)):
        assert fm.predict(query_of_entry(_mm(m, n, k, 0.0)))[0] == pytest.approx(m * n * k * 1e-9, rel=1e-6)


def test_a_variant_whose_off_lattice_misses_are_not_local_keeps_the_lattice():
    rng = np.random.default_rng(5)
    off = []
    for _ in range(80):  # misses up to e^+-0.3 at random, centred on the lattice: nothing a neighbour predicts
        m, n, k = (int(v) // 16 * 16 for v in np.exp(rng.uniform(math.log(300), math.log(8000), 3)))
        off.append(_mm(m, n, k, m * n * k * 1e-9 * math.exp(rng.uniform(-0.3, 0.3))))
    g = GemmModel()
    g.fit(_lattice_rows())
    g.fit_offgrid(off)
    assert g.offgrid.variants == {}
    assert len(off) > OFFGRID_NEIGHBOURS


def test_offgrid_files_are_sweep_files_not_exact_entries():
    assert is_sweep_file("profiles/data/h200/sweep_offgrid_gemm.jsonl.gz")


def test_fitted_models_are_cached_per_input_content(tmp_path, monkeypatch):
    import gzip
    import json

    from profiles.families.fit_cache import cache_key

    monkeypatch.setenv("PHANTORA_CACHE", str(tmp_path / "cache"))
    grid = tmp_path / "sweep_grid_gemm.jsonl.gz"
    head = {"format": "phantora-profile", "version": 1, "gpu": "h200"}
    with gzip.open(grid, "wt") as f:
        f.write(json.dumps(head) + "\n")
        for e in _lattice_rows():
            f.write(e.to_json() + "\n")
    q = query_of_entry(_mm(600, 520, 700, 0.0))
    first = FamilyModels.from_folder(tmp_path, "h200").predict(q)
    assert len(list((tmp_path / "cache").glob("families_h200_*.pkl"))) == 1
    assert FamilyModels.from_folder(tmp_path, "h200").predict(q) == first  # from the cache
    key = cache_key([grid], "h200")
    with gzip.open(grid, "at") as f:  # another point: another key, so a refit
        f.write(_mm(640, 640, 640, 1.0).to_json() + "\n")
    assert cache_key([grid], "h200") != key
