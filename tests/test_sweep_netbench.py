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
