"""Results files from a fabricated RankResult: summary keys, parquet columns, trace structure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interpose import OpRecord, RankResult
from phantora.results import OPS_COLUMNS, build_summary, gpu_busy_pct, mean_excluding_first, write_results
from phantora.scenario import load_scenario
from phantora.summary import summary_rows


def _result() -> RankResult:
    ops = [
        OpRecord(0, 0, "aten._to_copy.default(h2d)", "[8, 16]", "int64", 0.0, 5.0, "copy"),
        OpRecord(0, 0, "aten.mm.default", "[8, 16],[16, 32]", "bfloat16", 10.0, 80.0, "roofline"),
        OpRecord(0, 0, "aten.mm.default", "[8, 16],[16, 32]", "bfloat16", 110.0, 50.0, "roofline"),
        OpRecord(0, 7, "aten.add.Tensor", "[8, 32],[8, 32]", "float32", 160.0, 40.0, "profile"),
        OpRecord(0, 0, "aten.mm.default", "[8, 16],[16, 32]", "bfloat16", 210.0, 50.0, "roofline"),
    ]
    return RankResult(rank=0, ops=ops, iterations=[(0.0, 100.0), (100.0, 200.0), (200.0, 300.0)],
                      peak_allocated_bytes=3 * 2**20, peak_reserved_bytes=4 * 2**20, gpu_busy_us=225.0,
                      end_time_us=300.0, syncs=2)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "run"
    summary = write_results(out, results={0: _result()}, scenario=load_scenario("h100x1"), script="train.py",
                            argv=["--steps", "3"], host_time="zero", wall_s=1.25)
    return out, summary


def test_mean_excludes_first() -> None:
    assert mean_excluding_first([10.0, 2.0, 4.0]) == 3.0
    assert mean_excluding_first([7.0]) == 7.0
    assert mean_excluding_first([]) is None


def test_gpu_busy_over_steady_state() -> None:
    # iterations 1 and 2: [110,160)+[160,200) busy of [100,200); [210,260) of [200,300) -> 140/200
    assert gpu_busy_pct(_result()) == pytest.approx(70.0)


def test_summary_json_keys(written: tuple[Path, dict]) -> None:
    out, _ = written
    s = json.loads((out / "summary.json").read_text())
    for key in ("scenario", "script", "argv", "iteration_ms", "mean_ms_per_iter_excluding_first", "gpu_busy_pct",
                "peak_allocated_bytes", "peak_reserved_bytes", "coverage", "wall_s", "versions", "host_time"):
        assert key in s, key
    assert s["scenario"]["name"] == "h100x1"
    assert s["argv"] == ["--steps", "3"]
    assert s["iteration_ms"] == [0.1, 0.1, 0.1]
    assert s["mean_ms_per_iter_excluding_first"] == pytest.approx(0.1)
    assert s["peak_allocated_bytes"] == 3 * 2**20
    assert s["coverage"]["roofline"]["ops"] == 3
    assert s["coverage"]["roofline"]["dur_us"] == pytest.approx(180.0)
    assert sum(c["dur_pct"] for c in s["coverage"].values()) == pytest.approx(100.0, abs=0.05)
    assert {"python", "torch", "phantora"} <= set(s["versions"])


def test_ops_parquet_columns(written: tuple[Path, dict]) -> None:
    out, _ = written
    df = pd.read_parquet(out / "ops.parquet")
    assert list(df.columns) == OPS_COLUMNS
    assert len(df) == 5
    assert df["dur_us"].sum() == pytest.approx(225.0)
    assert set(df["stream"]) == {0, 7}


def test_trace_json_structure(written: tuple[Path, dict]) -> None:
    out, _ = written
    trace = json.loads((out / "trace.json").read_text())
    events = trace["traceEvents"]
    assert isinstance(events, list)
    meta = [e for e in events if e["ph"] == "M"]
    complete = [e for e in events if e["ph"] == "X"]
    names = {(e["name"], e["tid"]): e["args"]["name"] for e in meta if "name" in e["args"]}
    assert names[("process_name", 0)] == "rank 0"
    assert names[("thread_name", 0)] == "host"
    assert names[("thread_name", 1)] == "stream 0" and names[("thread_name", 8)] == "stream 7"
    for e in complete:  # what Perfetto's JSON importer needs for a complete event
        assert isinstance(e["name"], str) and isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float)) and e["dur"] >= 0
    assert sum(1 for e in complete if e.get("cat") == "iteration") == 3
    assert sum(1 for e in complete if e.get("cat") != "iteration") == 5


def test_summary_rows_iterations_then_totals(written: tuple[Path, dict]) -> None:
    _, summary = written
    rows = summary_rows(summary)
    assert [r["row"] for r in rows] == ["iteration"] * 3 + ["summary"]
    assert rows[-1]["peak_allocated_mib"] == 3.0
    json.dumps(rows)  # JSON-serialisable as printed by --json


def test_multi_rank_slowest_rank_per_iteration() -> None:
    a, b = _result(), _result()
    b.rank = 1
    b.iterations = [(0.0, 150.0), (150.0, 200.0), (200.0, 300.0)]
    s = build_summary(results={0: a, 1: b}, scenario={"name": "x"}, script="s.py", argv=[], host_time="zero",
                      wall_s=0.0)
    assert s["ranks"] == 2
    assert s["iteration_ms"] == [0.15, 0.1, 0.1]


def test_exact_coverage_counts_only_compute_model_time():
    from phantora.results import exact_coverage_pct

    cov = {"profile": {"dur_us": 90.0}, "fitted": {"dur_us": 10.0}, "copy": {"dur_us": 500.0}}
    assert exact_coverage_pct(cov) == 90.0
    assert exact_coverage_pct({"copy": {"dur_us": 5.0}}) is None


def test_missing_signatures_merged_across_ranks(tmp_path):
    from types import SimpleNamespace

    from phantora.results import write_missing_signatures

    a, b = {"op": "aten.mm.default", "shapes": [[2, 3]]}, {"op": "aten.add.Tensor", "shapes": [[4]]}
    results = {0: SimpleNamespace(missing_signatures=[a, b]), 1: SimpleNamespace(missing_signatures=[a])}
    assert write_missing_signatures(tmp_path / "m.jsonl", results) == 2
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert sorted(r["op"] for r in rows) == ["aten.add.Tensor", "aten.mm.default"]
