"""Shared by tests/test_frameworks_*.py: run ``phantora run`` as a user would (a subprocess of the
CLI) and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = REPO / "examples" / "frameworks"


@dataclass
class Run:
    """One finished ``phantora run``: its exit code, output and result files."""

    code: int
    out: str
    dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.dir / "summary.json").read_text())

    def collectives(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.dir / "collectives.parquet")

    def kinds(self) -> set[str]:
        return set(self.collectives()["kind"])


def phantora_run(tmp: Path, script: str | Path, *args: str, ranks: int = 1, scenario: str = "h200x8",
                 timeout_s: float = 300, env: dict[str, str] | None = None, opts: tuple[str, ...] = (),
                 cwd: Path | None = None) -> Run:
    """``python -m phantora run --scenario SCENARIO --nproc-per-node RANKS [OPTS] SCRIPT ARGS`` into
    ``tmp/run``."""
    out = tmp / "run"
    cmd = [sys.executable, "-m", "phantora", "run", "--scenario", scenario, "--nnodes", "1",
           "--nproc-per-node", str(ranks), "--out", str(out), "--timeout", str(timeout_s), *opts, str(script), *args]
    p = subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout_s + 60,
                       env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    return Run(p.returncode, p.stdout + p.stderr, out)


def require(module: str, why: str = "") -> Any:
    """Import ``module`` or skip, saying which package to install (the dev extra holds it)."""
    return pytest.importorskip(module, reason=f"{module} is not installed{why} (pip install -e '.[frameworks]')")


def assert_sensible(run: Run, *, iterations: int, max_ms: float = 5_000.0) -> dict[str, Any]:
    """The run completed with ``iterations`` optimizer steps, a positive ms/iter below ``max_ms``, and
    GPU memory allocated; returns summary.json."""
    assert run.code == 0, run.out[-4000:]
    s = run.summary
    assert s["status"] == "complete", s.get("error")
    assert s["iterations"] == iterations, (s["iterations"], s.get("iteration_kind"))
    ms = s["mean_ms_per_iter_excluding_first"]
    assert 0 < ms < max_ms, ms
    assert s["peak_allocated_bytes"] > 0
    return s
