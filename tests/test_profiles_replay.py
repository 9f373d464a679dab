"""The replay model: exact hits, family-fitted fallback, missing-signature output, on-demand path."""

from __future__ import annotations

import json

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles import build_compute_model, get_gpu, signature_of
from profiles.cost import family_of, ideal_us
from profiles.replay import fit_family
from profiles.store import ProfileEntry, ProfileHeader, write_profile

aten = torch.ops.aten
H100 = get_gpu("h100")


def mm_entry(m: int, k: int, n: int, dur: float) -> ProfileEntry:
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(k, n, device="cuda", dtype=torch.bfloat16)
        key = signature_of(aten.mm.default, (a, b), {}).key()
    nbytes = 2.0 * (m * k + k * n + m * n)
    return ProfileEntry(key=key, op="aten.mm.default", family="matmul", dtype="bfloat16", flops=2.0 * m * k * n,
                        bytes=nbytes, n_tensors=3, dur_us=dur, launch_us=5.0, host_gap_us=2.0)  # fmt: skip


def synthetic_mm(overhead: float, eff: float) -> list[ProfileEntry]:
    out = []
    for m, k, n in [(512, 512, 512), (1024, 1024, 4096), (4096, 4096, 4096), (2048, 8192, 2048), (8192, 1024, 1024)]:
        e = mm_entry(m, k, n, 1.0)
        e.dur_us = overhead + ideal_us(H100, "matmul", "bfloat16", e.flops, e.bytes) / eff
        out.append(e)
    return out


def test_family_classification():
    assert family_of("aten.mm.default") == "matmul"
    assert family_of("aten._scaled_dot_product_flash_attention_backward.default") == "attention"
    assert family_of("aten._fused_adamw_.default") == "optimizer"
    assert family_of("aten.native_layer_norm.default") == "reduction"
    assert family_of("aten._to_copy.default") == "copy"
    assert family_of("aten.gelu.default") == "elementwise"


def test_calibration_recovers_synthetic_overhead_and_efficiency():
    fit = fit_family(H100, synthetic_mm(overhead=4.0, eff=0.6))
    assert fit is not None
    assert fit.overhead_us == pytest.approx(4.0, rel=1e-3)
    assert fit.efficiency == pytest.approx(0.6, rel=1e-3)
    assert fit.median_rel_err < 1e-6
    assert fit_family(H100, synthetic_mm(4.0, 0.6)[:2]) is None  # too few entries to fit


@pytest.fixture
def profile_dir(tmp_path):
    d = tmp_path / "h100"
    write_profile(d / "mm.jsonl", ProfileHeader(gpu="h100"), synthetic_mm(overhead=4.0, eff=0.6))
    return d


def test_exact_hit_fitted_fallback_roofline_and_none(profile_dir, tmp_path):
    model = build_compute_model("replay", H100, profiles=[profile_dir])
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
        hit = model.time_op(aten.mm.default, (a, a), {}, a)
        b = torch.empty(3000, 4096, device="cuda", dtype=torch.bfloat16)
        fitted = model.time_op(aten.mm.default, (b, a), {}, b)
        g = model.time_op(aten.gelu.default, (a,), {}, a)
        v = model.time_op(aten.view.default, (a, [-1]), {}, a.view(-1))
    assert hit.source == "profile" and hit.launch_us == 5.0
    exact = synthetic_mm(4.0, 0.6)[2].dur_us
    assert hit.dur_us == pytest.approx(exact)
    flops = 2.0 * 3000 * 4096 * 4096
    nbytes = 2.0 * (3000 * 4096 + 4096 * 4096 + 3000 * 4096)
    assert fitted.source == "fitted"
    assert fitted.dur_us == pytest.approx(4.0 + ideal_us(H100, "matmul", "bfloat16", flops, nbytes) / 0.6, rel=1e-3)
    assert g.source == "roofline"  # no elementwise entries to fit
    assert v.source == "none" and v.dur_us == 0.0
    missing = model.missing_signatures()
    assert [m["op"] for m in missing] == ["aten.gelu.default", "aten.mm.default"]
    n = model.write_missing(tmp_path / "missing.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "missing.jsonl").read_text().splitlines()]
    assert n == 2 and rows[1]["args"][0] == {"T": [3000, 4096], "stride": [4096, 1], "dtype": "bfloat16", "device": "cuda"}


def test_host_gap_option_adds_recorded_python_time(profile_dir):
    model = build_compute_model("replay", H100, profiles=[profile_dir], host_gap=True)
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
        assert model.time_op(aten.mm.default, (a, a), {}, a).launch_us == 7.0
    # --host-time measured: the script's measured time replaces the replayed gap (a new signature,
    # since timings are cached per signature)
    model.measure_script_time()
    with FakeTensorMode(allow_non_fake_inputs=True):
        b = torch.empty(4096, 2048, device="cuda", dtype=torch.bfloat16)
        assert model.time_op(aten.mm.default, (a, b), {}, b).launch_us == 5.0


def test_cache_entries_are_found(profile_dir, tmp_path):
    from profiles.cache import ProfileCache

    cache = ProfileCache(tmp_path / "c.sqlite")
    e = mm_entry(333, 777, 555, 42.0)
    cache.put("h100", e)
    model = build_compute_model("replay", H100, profiles=[profile_dir], cache=tmp_path / "c.sqlite")
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(333, 777, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(777, 555, device="cuda", dtype=torch.bfloat16)
        t = model.time_op(aten.mm.default, (a, b), {}, a)
    assert t.source == "profile" and t.dur_us == 42.0 and not model.missing_signatures()


def test_default_profiles_and_wrong_gpu_file(profile_dir):
    from profiles.store import ProfileFormatError

    build_compute_model("replay", get_gpu("h200"))  # shipped profiles (or none) load without error
    with pytest.raises(ProfileFormatError, match="field 'gpu'"):
        build_compute_model("replay", get_gpu("h200"), profiles=[profile_dir / "mm.jsonl"])


def test_flash_attention_call_matches_its_measured_cudnn_twin(tmp_path):
    from profiles.replay import equivalent_keys

    with FakeTensorMode(allow_non_fake_inputs=True):
        q = torch.empty(8, 12, 1024, 64, device="cuda", dtype=torch.bfloat16)
        flash = signature_of(aten._scaled_dot_product_flash_attention.default, (q, q, q, 0.0, True), {"scale": 0.125})
    twin = ("aten._scaled_dot_product_cudnn_attention.default|8x12x1024x64;8x12x1024x64;8x12x1024x64"
            "|bfloat16,bfloat16,bfloat16|ccc|compute_log_sumexp=True,is_causal=True")  # fmt: skip
    assert equivalent_keys(flash)[0] == twin
    e = ProfileEntry(key=twin, op="aten._scaled_dot_product_cudnn_attention.default", family="attention",
                     dtype="bfloat16", dur_us=48.8, launch_us=9.0)  # fmt: skip
    write_profile(tmp_path / "a.jsonl", ProfileHeader(gpu="h100"), [e])
    model = build_compute_model("replay", H100, profiles=[tmp_path / "a.jsonl"])
    with FakeTensorMode(allow_non_fake_inputs=True):
        q = torch.empty(8, 12, 1024, 64, device="cuda", dtype=torch.bfloat16)
        out = aten._scaled_dot_product_flash_attention.default(q, q, q, 0.0, True, scale=0.125)
        t = model.time_op(aten._scaled_dot_product_flash_attention.default, (q, q, q, 0.0, True), {"scale": 0.125}, out)
    assert t.source == "profile" and t.dur_us == 48.8


def test_op_level_fit_is_preferred_and_launch_is_the_per_op_median(tmp_path):
    from profiles.replay import FitTable, op_launch_us

    mms = synthetic_mm(overhead=4.0, eff=0.6)
    for e, launch in zip(mms, [10.0, 20.0, 30.0, 40.0, 500.0], strict=True):
        e.launch_us = launch
    # another matmul op with very different behaviour must not leak into aten.mm's fit
    bmm = [ProfileEntry(key=f"aten.bmm.default|{i}", op="aten.bmm.default", family="matmul", dtype="bfloat16",
                        flops=1e9 * i, bytes=1e6, n_tensors=3, dur_us=100.0 * i) for i in (1, 2, 3)]  # fmt: skip
    entries = {e.key: e for e in [*mms, *bmm]}
    table = FitTable(H100, entries)
    probe = mm_entry(3000, 4096, 4096, 0.0)
    expect = 4.0 + ideal_us(H100, "matmul", "bfloat16", probe.flops, probe.bytes) / 0.6
    assert table.predict_entry(probe) == pytest.approx(expect, rel=1e-3)
    assert op_launch_us(entries)["aten.mm.default"] == 30.0
    write_profile(tmp_path / "m.jsonl", ProfileHeader(gpu="h100"), entries.values())
    model = build_compute_model("replay", H100, profiles=[tmp_path / "m.jsonl"])
    entry_model = build_compute_model("replay", H100, profiles=[tmp_path / "m.jsonl"], launch="entry")
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
        assert model.time_op(aten.mm.default, (a, a), {}, a).launch_us == 30.0
        assert entry_model.time_op(aten.mm.default, (a, a), {}, a).launch_us == 30.0  # its own entry: the 3rd
    with pytest.raises(ValueError, match="launch"):
        build_compute_model("replay", H100, profiles=[tmp_path / "m.jsonl"], launch="nope")


def test_fp32_matmul_peak_depends_on_tf32():
    from profiles.cost import peak_tflops

    assert peak_tflops(H100, "matmul", "float32") == H100.vector_tflops["float32"]
    assert peak_tflops(H100, "matmul", "tf32") == H100.tensor_tflops["float32"]
    assert peak_tflops(H100, "matmul", "bfloat16") == H100.tensor_tflops["bfloat16"]


def test_host_gap_from_entry_replays_the_signatures_own_gap(tmp_path):
    small, big = mm_entry(512, 512, 512, 3.0), mm_entry(1024, 1024, 1024, 9.0)
    small.host_gap_us, big.host_gap_us = 2.0, 40.0  # the op-name median is 21
    write_profile(tmp_path / "p.jsonl", ProfileHeader(gpu="h100"), [small, big])
    by_op = build_compute_model("replay", H100, profiles=[tmp_path / "p.jsonl"], host_gap=1.0)
    by_entry = build_compute_model("replay", H100, profiles=[tmp_path / "p.jsonl"], host_gap=1.0,
                                   host_gap_from="entry")  # fmt: skip
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(1024, 1024, device="cuda", dtype=torch.bfloat16)
        assert by_op.time_op(aten.mm.default, (a, a), {}, a).launch_us == 5.0 + 21.0
        assert by_entry.time_op(aten.mm.default, (a, a), {}, a).launch_us == 5.0 + 40.0
        c = torch.empty(2048, 1024, device="cuda", dtype=torch.bfloat16)  # no entry: the op median
        assert by_entry.time_op(aten.mm.default, (c, a), {}, c).launch_us == pytest.approx(5.0 + 21.0)
    with pytest.raises(ValueError, match="host_gap_from must be"):
        build_compute_model("replay", H100, profiles=[tmp_path / "p.jsonl"], host_gap_from="program")
