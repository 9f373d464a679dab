"""phantora.plots and `phantora report`: figures from sweep tables and run folders."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

matplotlib.use("Agg")

from phantora import plots
from phantora.cli import main

SWEPT = ["network.transport.name", "network.fabric.oversubscription", "hosts"]


def run_sweep_table() -> pd.DataFrame:
    rows = []
    for t in ("single_path", "uccl_multipath"):
        for o in (1, 2):
            for h in (4, 16):
                comm = 1.0 + h * o * (0.5 if t == "uccl_multipath" else 1.0)
                rows.append({"point_id": f"{t}{o}{h}", "network.transport.name": t,
                             "network.fabric.oversubscription": o, "hosts": h, "status": "ok",
                             "iteration_ms": 10 + comm, "compute_ms": 9.0, "exposed_comm_ms": comm, "idle_ms": 1.0})
    return pd.DataFrame(rows)


def netbench_table() -> pd.DataFrame:
    rows = []
    for t in ("single_path", "uccl_multipath"):
        for h in (4, 16):
            for k, size in enumerate(2 ** np.arange(20, 31, 2)):
                rows.append({"point_id": f"{t}{h}", "network.transport.name": t, "hosts": h, "status": "ok",
                             "size_bytes": int(size), "transport": t, "busbw_gbps": 10.0 * (k + 1)})
    return pd.DataFrame(rows)


def run_folder(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    bd = pd.DataFrame([{"rank": r, "iteration": i, "start_us": 1000.0 * i, "end_us": 1000.0 * (i + 1),
                        "dur_us": 1000.0, "compute_us": 600.0, "exposed_comm_us": 300.0, "idle_us": 100.0}
                       for r in range(2) for i in range(3)])
    ops = pd.DataFrame([{"rank": r, "stream": 7, "op": "aten.mm.default", "shapes": "", "dtype": "bf16",
                         "start_us": 1000.0 * i + 10 * k, "dur_us": 8.0, "source": "roofline"}
                        for r in range(2) for i in range(3) for k in range(60)])
    coll = pd.DataFrame([{"key": f"0#{i}", "kind": "all_reduce", "group": "0", "ranks": 2, "bytes": 1 << 20,
                          "dtype": "bf16", "start_us": 1000.0 * i + 600, "end_us": 1000.0 * i + 900,
                          "busbw_gbps": 3.5, "transport": "ring", "call_site": "x.py:1"} for i in range(3)])
    bd.to_parquet(d / "breakdown.parquet")
    ops.to_parquet(d / "ops.parquet")
    coll.to_parquet(d / "collectives.parquet")
    return d


def test_sweep_figures_have_one_bar_or_line_per_point() -> None:
    df = run_sweep_table()
    fig = plots.plot_breakdown_per_point(df, SWEPT)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(df)  # three stacked parts per point
    assert ax.get_xticklabels()[0].get_text() == "single_path, 1, 4"
    assert ax.get_xlabel() == "transport, oversubscription, hosts"
    fig = plots.plot_metric_vs(df, SWEPT, "iteration_ms", "hosts", "network.transport.name")
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)  # panels per oversubscription
    fig = plots.plot_busbw_vs_size(netbench_table(), ["network.transport.name", "hosts"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and all(len(ax.lines) == 2 for ax in visible)


def test_rank_timeline_and_breakdown(tmp_path: Path) -> None:
    tables = plots.load_run(run_folder(tmp_path))
    fig = plots.plot_rank_timeline(tables)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rank 0", "rank 1"]
    assert ax.get_xlim() == pytest.approx((0.0, 1.0))  # one iteration = 1000 µs
    fig = plots.plot_run_breakdown(tables["breakdown"])
    heights = sorted({round(p.get_height(), 6) for p in fig.axes[0].patches})
    assert heights == [0.1, 0.3, 0.6]


def test_link_utilisation_is_a_fraction_and_crosses_spines() -> None:
    scenario = {"hosts": 4, "gpus_per_host": 2,
                "network": {"fabric": {"hosts_per_leaf": 2}, "transport": {"name": "single_path"}}}
    util, dur_us = plots.link_utilisation(scenario, "all_reduce", 64 << 20, bins=20)
    assert dur_us > 0 and set(util["bin"]) == set(range(20))
    assert util["utilisation"].max() <= 1.0 + 1e-6
    leaf = util[util["link"].str.startswith("leaf")]
    assert leaf["utilisation"].max() > 0.1  # hosts on two leaves: bytes cross the spines
    assert not util["link"].str.startswith("nvl").any()


def test_report_on_a_sweep_folder(tmp_path: Path) -> None:
    d = tmp_path / "sweep"
    d.mkdir()
    run_sweep_table().to_parquet(d / "sweep.parquet")
    (d / "points.json").write_text(json.dumps({"swept": SWEPT, "command": "run", "points": []}))
    (d / "points" / "single_path14").mkdir(parents=True)
    res = CliRunner().invoke(main, ["report", str(d), "--json", "--format", "png", "--no-links"])
    assert res.exit_code == 0, res.output
    files = [json.loads(ln)["file"] for ln in res.output.splitlines()]
    assert {Path(f).name for f in files} == {"breakdown_per_point.png", "iteration_ms_vs_hosts.png",
                                             "speedup_vs_hosts.png"}
    assert all(Path(f).stat().st_size > 1000 for f in files)


def test_speedup_over_single_path_at_equal_other_fields() -> None:
    from phantora import plots

    sp = plots.speedup(run_sweep_table(), SWEPT, "iteration_ms", "network.transport.name", "single_path")
    assert set(sp["network.transport.name"]) == {"uccl_multipath"} and len(sp) == 4
    row = sp[(sp["network.fabric.oversubscription"] == 2) & (sp["hosts"] == 16)].iloc[0]
    # single-path: 10 + 1 + 32 = 43 ms; multipath: 10 + 1 + 16 = 27 ms
    assert row["speedup"] == pytest.approx(43 / 27)


def test_report_on_a_run_folder(tmp_path: Path) -> None:
    d = run_folder(tmp_path)
    res = CliRunner().invoke(main, ["report", str(d), "--json", "--format", "png,svg"])
    assert res.exit_code == 0, res.output
    names = {Path(json.loads(ln)["file"]).name for ln in res.output.splitlines()}
    assert names == {"breakdown_per_iteration.png", "breakdown_per_iteration.svg", "rank_timeline.png",
                     "rank_timeline.svg"}


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code != 0
    assert [ln for ln in res.output.splitlines() if ln] == [
        f"Error: {tmp_path}: neither sweep.parquet nor breakdown.parquet found "
        "(give a `phantora sweep` or a `phantora run` results folder)"]
    res = CliRunner().invoke(main, ["report", str(run_folder(tmp_path)), "--format", "gif"])
    assert res.exit_code != 0 and "--format: unknown format 'gif'" in res.output
