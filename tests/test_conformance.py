"""phantora conformance: the real vs simulated op-stream comparison (synthetic traces), the files it
reads, the CLI, and the shim's own op trace (keys as the GPU recorder writes them)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from phantora import conformance as cf
from phantora.cli import main
from phantora.results import write_op_trace

MM_BF16 = "aten.mm.default|64x64;64x64|bfloat16,bfloat16|cc|"
MM_FP32 = "aten.mm.default|64x64;64x64|float32,float32|cc|tf32=True"
FLASH = "aten._scaled_dot_product_flash_attention.default|2x4x128x64;2x4x128x64;2x4x128x64|bfloat16,bfloat16,bfloat16|ccc|is_causal=True"
CUDNN = "aten._scaled_dot_product_cudnn_attention.default|2x4x128x64;2x4x128x64;2x4x128x64|bfloat16,bfloat16,bfloat16|ccc|compute_log_sumexp=True,is_causal=True"
ADD = "aten.add.Tensor|64x64;64x64|bfloat16,bfloat16|cc|"
ITEM = "aten._local_scalar_dense.default||float32|c|"
H2D = "aten._to_copy.default|8x128|int64@cpu|c|non_blocking=True"
STEP = "aten._fused_adamw_.default|#12|float32|habc|amsgrad=False,maximize=False"

REAL_DUR = {MM_BF16: 10.0, FLASH: 40.0, ADD: 2.0, ITEM: 5.0, H2D: 8.0, STEP: 20.0}
SIM_DUR = {MM_BF16: 11.0, MM_FP32: 25.0, FLASH: 38.0, CUDNN: 30.0, ADD: 2.5, ITEM: 9.0, H2D: 9.0, STEP: 19.0}


def _iteration(attn: str = FLASH, mm: str = MM_BF16, extra: tuple[str, ...] = ()) -> list[str]:
    return [H2D, mm, attn, ADD, mm, *extra, ITEM, STEP]


def _run(iters: int = 3, **kw) -> list[str]:
    return [k for _ in range(iters) for k in _iteration(**kw)]


def _total(keys, dur=REAL_DUR) -> float:
    return sum(dur[k] for k in keys)


def test_identical_streams_match_completely():
    real = _run()
    rep = cf.compare(real, REAL_DUR, list(real), SIM_DUR)
    assert rep.mode == "segments" and rep.marker == STEP and rep.compared_segments == 4  # 3 steps + empty tail
    assert rep.matched_share == pytest.approx(1.0)
    assert rep.rows == [] and rep.counts["matched"] == len(real)
    assert rep.real_us == pytest.approx(_total(real))


def test_sdpa_backend_swap_is_different_with_its_share():
    real, sim = _run(), _run(attn=CUDNN)
    rep = cf.compare(real, REAL_DUR, sim, SIM_DUR)
    assert len(rep.rows) == 1
    row = rep.rows[0]
    assert (row.kind, row.real_key, row.sim_key, row.count) == ("different", FLASH, CUDNN, 3)
    assert row.differs == ["op", "flags"]
    assert row.real_us == pytest.approx(3 * 40.0) and row.sim_us == pytest.approx(3 * 30.0)
    assert row.share == pytest.approx(120.0 / _total(real))
    assert rep.matched_share == pytest.approx(1 - 120.0 / _total(real))
    assert rep.shares["different"] == pytest.approx(row.share)


def test_dtype_change_is_different_and_names_the_fields():
    rep = cf.compare(_run(), REAL_DUR, _run(mm=MM_FP32), SIM_DUR)
    (row,) = rep.rows
    assert row.kind == "different" and row.count == 6
    assert row.differs == ["dtypes", "flags"]
    assert "bfloat16,bfloat16 → float32,float32" in cf.describe(row)
    assert cf.describe(row).startswith("64x64;64x64")  # shapes shown when they agree


def test_missing_is_weighted_by_real_time_and_extra_by_simulated_time():
    real = _run()
    sim = [k for k in _run(extra=(MM_FP32,)) if k != ITEM]  # sim skips the sync, adds an fp32 mm
    rep = cf.compare(real, REAL_DUR, sim, SIM_DUR)
    kinds = {r.kind: r for r in rep.rows}
    assert set(kinds) == {"missing", "extra"}  # an mm is not an item: no pairing across families
    assert kinds["missing"].real_key == ITEM and kinds["missing"].count == 3
    assert kinds["missing"].share == pytest.approx(15.0 / _total(real))
    assert kinds["extra"].sim_key == MM_FP32 and kinds["extra"].sim_us == pytest.approx(75.0)
    assert kinds["extra"].share == pytest.approx(75.0 / _total(real))
    assert rep.shares["extra"] == pytest.approx(75.0 / _total(real))
    assert rep.matched_share == pytest.approx(1 - 15.0 / _total(real))
    assert [r.kind for r in rep.rows] == ["extra", "missing"]  # largest share first


def test_order_within_an_iteration_does_not_matter_but_iterations_do():
    real = _run()
    shuffled = [k for _ in range(3) for k in [ADD, MM_BF16, H2D, ITEM, FLASH, MM_BF16, STEP]]
    assert cf.compare(real, REAL_DUR, shuffled, SIM_DUR).matched_share == pytest.approx(1.0)
    # the first iteration's add happens in the second one instead: per segment it is missing/extra ...
    moved = list(real)
    moved.remove(ADD)
    moved.insert(len(_iteration()) + 1, ADD)
    rep = cf.compare(real, REAL_DUR, moved, SIM_DUR)
    assert sorted(r.kind for r in rep.rows) == ["extra", "missing"]
    # ... and over the whole runs (one multiset) it matches
    assert cf.compare(real, REAL_DUR, moved, SIM_DUR, align=False).matched_share == pytest.approx(1.0)


def test_steady_compares_only_the_iterations_after_the_first():
    setup = ["aten.zeros.default||||", H2D]
    real = setup + _run(4)
    sim = _run(4)  # the simulated run lacks the setup ops
    whole = cf.compare(real, REAL_DUR | {"aten.zeros.default||||": 1.0}, sim, SIM_DUR)
    assert whole.counts["missing"] == 2
    steady = cf.compare(real, REAL_DUR, sim, SIM_DUR, steady=True)
    assert steady.mode == "steady" and steady.compared_segments == 3
    assert steady.rows == [] and steady.real_ops == 3 * len(_iteration())


def test_no_common_step_key_compares_whole_runs_with_a_note():
    real, sim = _run(), [k for k in _run() if k != STEP]
    rep = cf.compare(real, REAL_DUR, sim, SIM_DUR)
    assert rep.mode == "whole" and rep.marker is None and rep.notes
    assert [(r.kind, r.real_key, r.count) for r in rep.rows] == [("missing", STEP, 3)]


def test_marker_is_the_last_step_key_of_the_fewest_occurrences():
    g1, g2 = STEP.replace("habc", "h111"), STEP.replace("habc", "h222")
    foreach = "aten._foreach_norm.Scalar|#12|float32|h333|"
    real = [MM_BF16, foreach, g1, g2, foreach] * 2
    assert cf.choose_marker(real, real) == g2
    assert cf.choose_marker(real, [MM_BF16]) is None


def test_real_keys_without_a_profile_entry_are_estimated_or_unweighted():
    unknown = "aten.weird.default|4|float32|c|"
    real = [*_run(), unknown]
    rep = cf.compare(real, {k: v for k, v in REAL_DUR.items() if k != ADD}, _run(), SIM_DUR)
    assert rep.estimated_ops == 3  # the add's time comes from the simulator
    assert rep.unweighted_ops == 1 and any("no time" in n for n in rep.notes)
    (row,) = rep.rows
    assert row.kind == "missing" and row.real_key == unknown and row.real_us == 0.0


def test_pairing_prefers_the_most_similar_key():
    a = "aten.add.Tensor|64x64;64x64|float32,float32|cc|"
    b = "aten.add_.Tensor|64x64;64x64|bfloat16,bfloat16|cc|"  # same family (in-place), same shapes
    c = "aten.add.Tensor|8x8;8x8|float32,float32|cc|"
    pairs = cf._pair(Counter({ADD: 2}), Counter({a: 1, b: 1, c: 5}))
    assert pairs == [(ADD, b, 1), (ADD, a, 1)]
    assert cf.family("aten._scaled_dot_product_efficient_attention_backward.default") == "attention_backward"
    assert cf.family("aten._flash_attention_forward.default") == "attention"


def test_key_fields_and_json_lines():
    p = cf.parse_key("aten.copy_.default|4;4|float32,float32@cpu|cc|s=a|b")
    assert (p.op, p.shapes, p.dtypes, p.contiguity, p.flags) == ("aten.copy_.default", "4;4", "float32,float32@cpu", "cc", "s=a|b")
    rep = cf.compare(_run(), REAL_DUR, _run(attn=CUDNN), SIM_DUR)
    lines = [json.loads(x) for x in rep.to_json_lines()]
    assert lines[0]["kind"] == "summary" and lines[0]["shares"]["different"] > 0
    assert lines[1]["kind"] == "different" and lines[1]["real_key"] == FLASH and lines[1]["sim_key"] == CUDNN


# ----------------------------------------------------------------------------- files and CLI


def _write_real(tmp_path, keys, dur):
    trace = tmp_path / "real.gz"
    with gzip.open(trace, "wt") as f:
        f.write("\n".join(keys) + "\n")
    prof = tmp_path / "real.jsonl"
    lines = [json.dumps({"format": "phantora-profile", "version": 1, "gpu": "h200"})]
    lines += [json.dumps({"key": k, "op": k.split("|")[0], "dur_us": v, "calls": 1}) for k, v in dur.items()]
    prof.write_text("\n".join(lines) + "\n")
    return trace, prof


def _write_sim(out, keys, dur):
    out.mkdir()
    r = SimpleNamespace(op_keys=keys, op_key_times={k: (dur[k], "profile") for k in set(keys)})
    assert write_op_trace(out, {1: SimpleNamespace(op_keys=["x"], op_key_times={}), 0: r}) == len(keys)


def test_op_trace_files_round_trip(tmp_path):
    keys = _run(attn=CUDNN)
    _write_sim(tmp_path / "sim", keys, SIM_DUR)
    got, dur = cf.read_sim(tmp_path / "sim")
    assert got == keys  # the lowest rank's, in order
    assert dur[CUDNN] == 30.0 and set(dur) == set(keys)
    times = [json.loads(x) for x in (tmp_path / "sim" / "op_times.jsonl").read_text().splitlines()]
    assert {t["key"]: t["calls"] for t in times}[MM_BF16] == 6
    plain = tmp_path / "plain.txt"
    plain.write_text("a\n\nb\n")
    assert cf.read_trace(plain) == ["a", "b"]
    with pytest.raises(cf.ConformanceInputError, match=r"no op_trace\.gz"):
        cf.read_sim(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a"}\n')
    with pytest.raises(cf.ConformanceInputError, match=r"bad.jsonl:1: field"):
        cf.read_durations(bad)


def test_cli_table_and_json(tmp_path):
    real = _run()
    trace, prof = _write_real(tmp_path, real, REAL_DUR)
    _write_sim(tmp_path / "sim", _run(attn=CUDNN), SIM_DUR)
    args = ["conformance", "--real-trace", str(trace), "--real-profile", str(prof), "--sim", str(tmp_path / "sim")]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    share = 100 * 120.0 / _total(real)
    assert "different" in r.output and f"{share:.2f}" in r.output
    assert f"matched {100 - share:.2f}% of real GPU time" in r.output
    r = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert lines[0]["shares"]["matched"] == pytest.approx(1 - share / 100)
    assert [x["kind"] for x in lines[1:]] == ["different"]
    r = CliRunner().invoke(main, ["conformance", "--real-trace", str(trace), "--real-profile", str(prof)])
    assert r.exit_code == 2


# ----------------------------------------------------------------------------- the shim's side


def test_shim_records_the_keys_a_gpu_recorder_would(cfg):
    import torch

    from interpose import interposed
    from profiles import signature_of

    aten = torch.ops.aten
    with interposed(cfg) as rt:
        host = torch.ones(4, 8)
        x = host.to("cuda", non_blocking=True)
        w = torch.randn(8, 8, device="cuda")
        y = (x @ w).t()  # the view launches nothing
        s = y.sum()
        s.item()
        y.cpu()
        keys = list(rt.op_keys)
        times = dict(rt.key_times)
    h2d_kwargs = {"dtype": torch.float32, "layout": torch.strided, "non_blocking": True}  # as the dispatcher passes them
    expect_h2d = signature_of(aten._to_copy.default, (host,), h2d_kwargs).key()
    assert expect_h2d == "aten._to_copy.default|4x8|float32@cpu|c|dtype=torch.float32,layout=torch.strided,non_blocking=True"
    assert keys[0] == expect_h2d
    ops = [k.split("|")[0] for k in keys]
    assert ops == ["aten._to_copy.default", "aten.randn.default", "aten.mm.default", "aten.sum.default",
                   "aten._local_scalar_dense.default", "aten._to_copy.default"]
    assert keys[2] == "aten.mm.default|4x8;8x8|float32,float32|cc|"
    assert keys[3] == "aten.sum.default|8x4|float32|n|"  # of the transposed (non-contiguous) view
    assert keys[4] == "aten._local_scalar_dense.default||float32|c|"
    assert times[keys[2]][1] == "roofline" and times[keys[0]][1] == "copy" and times[keys[0]][0] > 0
