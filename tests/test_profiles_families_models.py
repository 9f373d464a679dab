"""Family-model mechanisms added after the first held-out check (issue 17): node merging, the softmax
kernel switch, fp32 wave quantisation and grouped GEMMs. Synthetic laws only; no timing thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from profiles.families import FamilyModels, Query
from profiles.families.base import LogGrid, merge_close, query_of_entry
from profiles.families.bytes_bound import PERSISTENT_SOFTMAX_COLS, BytesModel
from profiles.families.gemm import GemmModel, wave_work
from profiles.families.grouped_mm import as_mm, grouped_point
from profiles.store import ProfileEntry


def test_merge_close_joins_values_a_few_bytes_apart_only():
    nodes = merge_close(np.log(np.array([4096.0, 4100.0, 16384.0, 16400.0, 65536.0])))
    assert len(nodes) == 3
    assert len(merge_close(np.log(np.array([1000.0, 1100.0])))) == 2  # 10% apart: two nodes


def test_log_grid_with_near_duplicate_axis_values_is_a_full_lattice():
    # a foreach op's bytes count one 4-byte output per tensor: the same size level differs by a few bytes
    pts, durs = [], []
    for t in (2, 8, 32):
        for numel in (1024, 4096, 16384):
            nbytes = 4.0 * numel * t + 4 * t
            pts.append((t, nbytes))
            durs.append(3.0 + nbytes / 1e4)
    g = LogGrid(pts, durs, [b for _, b in pts])
    assert [len(n) for n in g.nodes] == [3, 5]  # byte levels shared across tensor counts, not 9 of them
    for (t, b), d in zip(pts, durs, strict=True):
        assert g.predict([t, b], lambda x: x[1]) == pytest.approx(d, rel=1e-3)  # a node is its values' mean


def _softmax_entry(rows: int, cols: int, us: float) -> ProfileEntry:
    key = f"aten._softmax.default|{rows}x{cols}|bfloat16|c|dim=-1,half_to_float=False"
    return ProfileEntry(key=key, op="aten._softmax.default", family="softmax", dtype="bfloat16",
                        bytes=4.0 * rows * cols, n_tensors=2, dur_us=us)  # fmt: skip


def test_softmax_does_not_interpolate_across_the_persistent_kernel_switch():
    # made-up law: the block-per-row kernel (rows > 2048 elements) moves data at half the rate
    def law(rows: int, cols: int) -> float:
        return rows * cols * (2e-5 if cols > PERSISTENT_SOFTMAX_COLS else 1e-5)

    entries = [_softmax_entry(2**20 // c, c, law(2**20 // c, c)) for c in (256, 1024, 4096, 16384)]
    entries += [_softmax_entry(2**22 // c, c, law(2**22 // c, c)) for c in (256, 1024, 4096, 16384)]
    m = BytesModel()
    m.fit(entries)


    warp = m.predict(query_of_entry(_softmax_entry(1024, 2048, 0.0)))
    block = m.predict(query_of_entry(_softmax_entry(1024, 2304, 0.0)))
    assert warp == pytest.approx(law(1024, 2048), rel=1e-6)  # the warp regime's rate, extrapolated by work
    assert block == pytest.approx(law(1024, 2304), rel=1e-6)  # the block regime's rate, not a blend


def test_wave_work_rounds_multi_wave_tile_counts_up_to_whole_waves():
    assert wave_work(1, 1024, 1024, 64, 132) == 1024 * 1024 * 64  # 64 tiles: one wave, work as is
    # 8 x 34 = 272 tiles on 132 SMs: 3 waves = 396 slots
    assert wave_work(1, 1024, 34 * 128, 64, 132) == pytest.approx(1024 * 34 * 128 * 64 * 396 / 272)
    assert wave_work(1, 1024, 33 * 128, 64, 132) == pytest.approx(1024 * 33 * 128 * 64)  # 264: 2 full waves


def _mm_entry(dtype: str, m: int, n: int, k: int, us: float) -> ProfileEntry:
    key = f"aten.mm.default|{m}x{k};{k}x{n}|{dtype},{dtype}|cc|"
    return ProfileEntry(key=key, op="aten.mm.default", family="matmul", dtype=dtype, flops=2.0 * m * n * k,
                        n_tensors=3, dur_us=us)  # fmt: skip


def test_fp32_gemm_prediction_carries_the_partial_last_wave_and_bf16_does_not():
    dims = [256, 512, 1024, 2048, 4096]
    rows = []
    for dt in ("float32", "bfloat16"):
        for m in dims:
            for n in dims:
                for k in (256, 1024):
                    rows.append(_mm_entry(dt, m, n, k, wave_work(1, m, n, k, 132) * 1e-6))
    g = GemmModel()
    g.fit(rows)


    # M = 1024 (8 tile rows), N = 2176 (17 tile columns): 136 tiles = 2 waves on 132 SMs, 1.94x the work's
    q32 = query_of_entry(_mm_entry("float32", 1024, 2176, 256, 0.0))
    assert g.predict(q32) == pytest.approx(wave_work(1, 1024, 2176, 256, 132) * 1e-6, rel=1e-6)
    q16 = query_of_entry(_mm_entry("bfloat16", 1024, 2176, 256, 0.0))
    assert g.predict(q16) < 0.8 * g.predict(q32)  # same grid law, but bf16 interpolates plain work


def test_grouped_mm_maps_to_the_gemm_of_its_concatenated_groups():
    fwd = Query("aten._grouped_mm.default", ((8192, 512), (8, 512, 1024), (8,)),
                ("bfloat16", "bfloat16", "int32"), (True, False, True))  # fmt: skip
    mm = as_mm(fwd)
    assert mm is not None and mm.shapes == ((8192, 512), (512, 1024)) and mm.contiguous == (True, False)
    wgrad = Query("aten._grouped_mm.default", ((2048, 8192), (8192, 512), (8,)),
                  ("bfloat16", "bfloat16", "int32"), (False, True, True))  # fmt: skip
    mm = as_mm(wgrad)
    assert mm is not None and mm.shapes == ((2048, 8192), (8192, 512)) and mm.contiguous == (False, True)
    three_d = Query("aten._grouped_mm.default", ((8, 64, 512), (8, 512, 64), (8,)),
                    ("bfloat16", "bfloat16", "int32"), (True, True, True))  # fmt: skip
    assert as_mm(three_d) is None
    fp32 = Query("aten._grouped_mm.default", ((64, 512), (8, 512, 64), (8,)), ("float32", "float32", "int32"),
                 (True, True, True))  # fmt: skip
    assert as_mm(fp32) is None


def test_grouped_mm_model_answers_what_the_mm_grid_answers_for_the_concatenated_gemm():
    rows = [
        _mm_entry("bfloat16", m, n, k, 5.0 + m * n * k / 1e9)
        for m in (1024, 4096, 16384)
        for n in (256, 1024, 4096)
        for k in (256, 1024, 4096)
    ]
    models = FamilyModels(rows)
    g = Query("aten._grouped_mm.default", ((8192, 1024), (8, 1024, 1024), (8,)),
              ("bfloat16", "bfloat16", "int32"), (True, True, True))  # fmt: skip
    dense = Query("aten.mm.default", ((8192, 1024), (1024, 1024)), ("bfloat16", "bfloat16"), (True, True))
    got, dense_got = models.predict(g), models.predict(dense)
    assert got is not None and dense_got is not None and got[1] == "grouped_mm"
    assert math.isclose(got[0], dense_got[0])


def test_slow_node_on_an_axis_edge_is_dropped_but_a_slow_edge_row_is_kept():
    rows = [4.0**k for k in range(6)]
    cols = [256.0, 1024.0, 4096.0]
    pts = [(r, c) for r in rows for c in cols]
    durs = [5.0 + r * c / 1e4 for r, c in pts]
    i = pts.index((rows[2], 256.0))  # interior along rows, on the low edge of cols
    durs[i] *= 4.0
    assert LogGrid(pts, durs, [r * c for r, c in pts]).n_outliers == 1
    slow_edge_col = [d * (3.0 if c == 256.0 else 1.0) for (r, c), d in zip(pts, durs, strict=True)]
    slow_edge_col[i] = durs[i] / 4.0 * 3.0
    assert LogGrid(pts, slow_edge_col, [r * c for r, c in pts]).n_outliers == 0  # a whole slow column


def _ln_bwd_entry(rows: int, cols: int, us: float) -> ProfileEntry:
    key = (f"aten.native_layer_norm_backward.default|{rows}x{cols};{rows}x{cols};{rows}x1;{rows}x1;{cols};{cols}|"
           "bfloat16,bfloat16,float32,float32,bfloat16,bfloat16|cccccc|normalized_shape=[" + str(cols) + "],"
           "output_mask=[True, True, True]")  # fmt: skip
    return ProfileEntry(key=key, op="aten.native_layer_norm_backward.default", family="norm", dtype="bfloat16",
                        bytes=6.0 * rows * cols, n_tensors=6, dur_us=us)  # fmt: skip


def test_layer_norm_backward_rows_split_regime_extrapolates_down_by_efficiency():


    m = BytesModel()
    q_split = query_of_entry(_ln_bwd_entry(100_000, 256, 0.0))
    q_cols = query_of_entry(_ln_bwd_entry(60_000, 256, 0.0))
    assert m.features(q_split)[0][2] == "rows_split" and m.features(q_cols)[0][2] == "cols"
    assert m.features(query_of_entry(_ln_bwd_entry(100_000, 4096, 0.0)))[0][2] == "cols"  # 128 >= 66 blocks
    # made-up law: the one-kernel path is 4x slower per row; the split path's grid starts at 262144 rows
    entries = [_ln_bwd_entry(r, c, r * c * 1e-5 * (1.0 if r > 65536 and c < 2112 else 4.0))
               for r in (4096, 16384, 65536, 262144, 1048576) for c in (256, 1024)]  # fmt: skip
    m.fit(entries)
    assert m.predict(q_split) == pytest.approx(100_000 * 256 * 1e-5, rel=1e-6)  # not the 262144-row time


def test_layout_kinds_and_factor_stretch_only_the_bandwidth_part():
    from profiles.families.bytes_bound import layout_kinds

    def q(shapes, dtypes, cont) -> Query:
        return Query("aten.add.Tensor", shapes, dtypes, cont, bytes=2.0 * 3 * 4096 * 4096)

    plain = q(((4096, 4096), (4096, 4096)), ("bfloat16", "bfloat16"), (True, True))
    bcast_cast = q(((8, 4096, 4096), (4096,)), ("float32", "bfloat16"), (True, True))
    strided = q(((4096, 4096), (4096, 4096)), ("bfloat16", "bfloat16"), (False, True))
    assert layout_kinds(plain) == [] and layout_kinds(strided) == ["noncontig"]
    assert layout_kinds(bcast_cast) == ["cast", "broadcast"]
    xs = [2.0**k for k in range(10, 32, 2)]
    rows = [ProfileEntry(key=f"aten.add.Tensor|{int(x)}x1;{int(x)}x1|bfloat16,bfloat16|cc|", op="aten.add.Tensor",
                         family="elementwise", dtype="bfloat16", bytes=x, dur_us=4.0 + x / 3e6) for x in xs]  # fmt: skip
    m = BytesModel()
    m.fit(rows)
    m.layout_factors = {"noncontig": 2.0, "cast": 1.0, "broadcast": 1.0}
    base, slow = m.predict(plain), m.predict(strided)
    assert base is not None and slow is not None
    floor = 4.0 + xs[0] / 3e6  # the fastest grid node
    assert slow - floor == pytest.approx(2.0 * (base - floor), rel=1e-6)  # the launch floor is not doubled


def _grouped_entry(g: int, tpg: int, k: int, n: int, form: str, us: float) -> ProfileEntry:
    t = g * tpg
    if form == "wgrad":
        shapes, cont = f"{k}x{t};{t}x{n};{g}", "ncc"
    else:
        shapes, cont = f"{t}x{k};{g}x{k}x{n};{g}", "ccc" if form == "xw" else "cnc"
    key = f"aten._grouped_mm.default|{shapes}|bfloat16,bfloat16,int32|{cont}|"
    return ProfileEntry(key=key, op="aten._grouped_mm.default", family="matmul", dtype="bfloat16", shapes=shapes,
                        flops=2.0 * t * k * n, bytes=0.0, n_tensors=3, dur_us=us)  # fmt: skip


def test_grouped_sweep_grids_take_over_from_the_dense_gemm_per_form():
    # a law the dense grid cannot show: a per-group cost (small groups are slow), different per form
    def law(g: int, tpg: int, k: int, n: int, form: str) -> float:
        return (4.0 if form == "wgrad" else 3.0) + 0.5 * g + g * tpg * k * n / 2e8

    lattice = [(g, tpg, k, n) for g in (4, 16, 64) for tpg in (16, 256, 4096) for k in (256, 1024, 4096)
               for n in (256, 1024, 4096)]  # fmt: skip
    rows = [_grouped_entry(*p, form, law(*p, form)) for form in ("xw", "xwt", "wgrad") for p in lattice]
    rows += [_mm_entry("bfloat16", m, n, k, 5.0 + m * n * k / 1e9) for m in (1024, 16384) for n in (256, 4096)
             for k in (256, 4096)]  # fmt: skip
    models = FamilyModels(rows)
    for form in ("xw", "xwt", "wgrad"):
        e = _grouped_entry(16, 256, 1024, 1024, form, law(16, 256, 1024, 1024, form))  # a grid node
        got = models.predict(query_of_entry(e))
        assert got is not None and got[1] == "grouped_mm" and got[0] == pytest.approx(e.dur_us, rel=1e-6)
        between = _grouped_entry(32, 512, 2048, 2048, form, law(32, 512, 2048, 2048, form))
        pred = models.predict(query_of_entry(between))
        assert pred is not None and abs(pred[0] / between.dur_us - 1) < 0.15  # log-log between nodes
    # a 3-D x 3-D grouped GEMM is neither form: no answer from either path
    three_d = Query("aten._grouped_mm.default", ((8, 64, 512), (8, 512, 64), (8,)),
                    ("bfloat16", "bfloat16", "int32"), (True, True, True))  # fmt: skip
    assert models.predict(three_d) is None


def test_grouped_point_reads_groups_tokens_and_form():
    e = _grouped_entry(8, 1024, 512, 2048, "wgrad", 10.0)
    assert grouped_point(query_of_entry(e)) == ("wgrad", [8.0, 1024.0, 512.0, 2048.0])
    e = _grouped_entry(8, 1024, 512, 2048, "xwt", 10.0)
    assert grouped_point(query_of_entry(e)) == ("xwt", [8.0, 1024.0, 512.0, 2048.0])
