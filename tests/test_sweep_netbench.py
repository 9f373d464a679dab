"""`phantora sweep` end to end with real `phantora netbench` points: kill mid-way, resume, table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

BASE = """\
name: tiny
gpu: h100
hosts: 2
gpus_per_host: 2
network:
  fabric: {hosts_per_leaf: 1}
"""

STUDY = """\
study:
  name: tiny-netbench
  command: netbench
  args: [--op, all_reduce, --min-bytes, 1M, --max-bytes, 16M, --step-factor, "4"]
extends: base.yaml
sweep:
  grid:
    network.transport.name: [single_path, uccl_multipath]
    hosts: [2, 4]
"""


@pytest.mark.slow
def test_netbench_sweep_killed_and_resumed(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "study.yaml").write_text(STUDY)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phantora", "sweep", str(tmp_path / "study.yaml"), "--out", str(out), "-j", "1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.glob("points/*/result.json")) and time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}
    assert 1 <= len(before) < 4
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("reused") == len(before)
    for pid, mtime in before.items():
        assert (out / "points" / pid / "result.json").stat().st_mtime_ns == mtime
    df = pd.read_parquet(out / "sweep.parquet")
    assert len(df) == 4 * 3  # 4 points x 3 sizes (1M, 4M, 16M)
    assert (df["status"] == "ok").all() and (df["transport"] == df["network.transport.name"]).all()
    assert df["busbw_gbps"].gt(0).all()
    big = df[df["size_bytes"] == 16 << 20].set_index(["hosts", "transport"])["busbw_gbps"]
    assert big.loc[(4, "uccl_multipath")] >= big.loc[(4, "single_path")] * 0.99


@pytest.mark.slow
def test_ray_executor_gives_the_local_results(tmp_path: Path) -> None:
    """`--ray`: the same points as Ray tasks on a local Ray instance give the local table."""
    ray = pytest.importorskip("ray")
    from phantora.sweep import load_study, ray_executor, run_study

    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "study.yaml").write_text(STUDY)
    study = load_study(tmp_path / "study.yaml")
    run_study(study, tmp_path / "local", workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcomes = run_study(study, tmp_path / "ray", executor=ray_executor(None))
    finally:
        ray.shutdown()
    assert len(outcomes) == 4 and all(o.ok and not o.reused for o in outcomes)
    cols = ["point_id", "size_bytes", "transport", "time_us"]
    local = pd.read_parquet(tmp_path / "local" / "sweep.parquet")[cols].sort_values(cols[:3])
    remote = pd.read_parquet(tmp_path / "ray" / "sweep.parquet")[cols].sort_values(cols[:3])
    assert local.reset_index(drop=True).equals(remote.reset_index(drop=True))
