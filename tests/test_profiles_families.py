"""Per-family cost models (profiles.families): the log grid, key parsing, fitting, and replay's use of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles import get_gpu, signature_of
from profiles.families import FamilyModels, is_sweep_file, query_of_entry, query_of_signature
from profiles.families.base import LogGrid, parse_key
from profiles.replay import ReplayModel
from profiles.store import ProfileEntry

aten = torch.ops.aten
DIMS = [16, 64, 256, 1024, 4096]


def synthetic_time(m: int, n: int, k: int) -> float:
    """A made-up GEMM law: a 5 µs floor plus work at a fixed rate (units are arbitrary)."""
    return 5.0 + m * n * k / 1e7


def mm_entry(m: int, n: int, k: int, transposed_b: bool = True) -> ProfileEntry:
    with FakeTensorMode():
        a = torch.empty(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(n, k, device="cuda", dtype=torch.bfloat16).t() if transposed_b else torch.empty(k, n)
        key = signature_of(aten.mm.default, (a, b), {}).key()
    return ProfileEntry(key=key, op="aten.mm.default", family="matmul", dtype="bfloat16", flops=2.0 * m * n * k,
                        bytes=2.0 * (m * k + k * n + m * n), n_tensors=3, dur_us=synthetic_time(m, n, k))  # fmt: skip


def test_log_grid_passes_through_nodes_and_extrapolates_by_regime():
    pts = [(m, n) for m in DIMS for n in DIMS]
    g = LogGrid(pts, [5.0 + m * n / 1e3 for m, n in pts], [m * n for m, n in pts])
    for m, n in pts:
        assert g.predict([m, n], lambda x: x[0] * x[1]) == pytest.approx(5.0 + m * n / 1e3)
    # below the grid: the edge's time (a launch floor); above: the edge's efficiency times the work
    assert g.predict([4, 16], lambda x: x[0] * x[1]) == pytest.approx(
        g.predict([16, 16], lambda x: x[0] * x[1])
    )
    big = g.predict([8192, 4096], lambda x: x[0] * x[1])
    assert big == pytest.approx(2 * g.predict([4096, 4096], lambda x: x[0] * x[1]))


def test_log_grid_drops_an_isolated_slow_node_but_keeps_a_slow_row():
    xs = [2.0**k for k in range(10)]
    durs = [x for x in xs]
    durs[5] *= 6.0  # one sample slowed by the machine
    g = LogGrid([(x,) for x in xs], durs, xs)
    assert g.n_outliers == 1
    assert g.predict([xs[5]], lambda x: x[0]) == pytest.approx(xs[5], rel=1e-6)
    pts = [(r, c) for r in xs for c in (256.0, 1024.0, 4096.0)]
    slow = [r * (3.0 if c == 1024.0 else 1.0) for r, c in pts]  # a row length with a slower kernel
    assert LogGrid(pts, slow, [r for r, _ in pts]).n_outliers == 0


def test_parse_key_inverts_signature_key():
    with FakeTensorMode():
        x = torch.empty(8, 64, 56, 56, device="cuda", dtype=torch.bfloat16)
        w = torch.empty(64, 64, 3, 3, device="cuda", dtype=torch.bfloat16)
        args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        sig = signature_of(aten.convolution.default, args, {})
    op, shapes, dtypes, cont, flags = parse_key(sig.key())
    assert (op, shapes, dtypes, cont) == (sig.op, sig.shapes, sig.dtypes, sig.contiguous)
    assert flags == dict(sig.flags) and flags["stride"] == "[1, 1]"
    assert parse_key("aten._fused_adamw_.default|#425|float32|h90ef|amsgrad=False")[1] == ()


def test_gemm_model_interpolates_a_synthetic_law():
    entries = [mm_entry(m, n, k) for m in DIMS for n in DIMS for k in DIMS]
    models = FamilyModels(entries)
    off = mm_entry(384, 1536, 768)
    dur, name = models.predict(query_of_entry(off))
    assert name == "gemm"
    assert abs(dur / off.dur_us - 1) < 0.2  # between nodes of a 4x grid the synthetic law bends a little
    grid_pt = mm_entry(256, 1024, 64)
    assert models.predict(query_of_entry(grid_pt))[0] == pytest.approx(grid_pt.dur_us)
    # a layout nobody swept uses a swept one; an op no model covers answers None
    assert models.predict(query_of_entry(mm_entry(256, 1024, 64, transposed_b=False))) is not None
    other = ProfileEntry(
        key="aten.neg.default|64|bfloat16|c|",
        op="aten.neg.default",
        family="elementwise",
        dtype="bfloat16",
        dur_us=3.0,
        bytes=256.0,
    )
    assert models.predict(query_of_entry(other)) is None


def test_sweep_files_are_not_exact_entries():
    assert is_sweep_file("profiles/data/h200/sweep_grid_gemm.jsonl.gz")
    assert is_sweep_file("sweep_heldout_conv.jsonl.gz")
    assert not is_sweep_file("profiles/data/h200/sweep_bf16.jsonl")
    model = ReplayModel(get_gpu("h200"), cache=None)
    assert not any(k.startswith("aten.mm.default|16x16;16x16|") for k in model.entries)


def test_replay_answers_unseen_shapes_from_family_models_and_exact_entries_first():
    model = ReplayModel(get_gpu("h200"), cache=None)
    with FakeTensorMode():
        a = torch.empty(1000, 3000, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(5000, 3000, device="cuda", dtype=torch.bfloat16).t()
        out = aten.mm.default(a, b)
        sig = signature_of(aten.mm.default, (a, b), {})
        assert sig.key() not in model.entries
        t = model.time_signature(sig, aten.mm.default, (a, b), {}, out)
        assert t.source == "family" and math.isfinite(t.dur_us) and t.dur_us > 0
        assert any(s["key"] == sig.key() for s in model.missing_signatures())  # still fed to --kernels-only
        key = next(k for k in model.entries if k.startswith("aten.mm.default|8192x768;768x3072|"))
        e = model.entries[key]
        _, shapes, *_ = parse_key(key)
        a2 = torch.empty(*shapes[0], device="cuda", dtype=torch.bfloat16)
        b2 = torch.empty_strided(shapes[1], (1, shapes[1][0]) if not e.key.split("|")[3].endswith("c") else
                                 (shapes[1][1], 1), device="cuda", dtype=torch.bfloat16)  # fmt: skip
        sig2 = signature_of(aten.mm.default, (a2, b2), {})
        if sig2.key() == key:
            t2 = model.time_signature(sig2, aten.mm.default, (a2, b2), {}, aten.mm.default(a2, b2))
            assert t2.source == "profile" and t2.dur_us == e.dur_us
    q = query_of_signature(sig, 2.0 * 1000 * 3000 * 5000, 0.0, 3)
    assert model.families.predict(q) is not None and np.isfinite(model.families.predict(q)[0])
