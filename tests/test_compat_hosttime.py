"""``host_time="measured"`` counts the script's own CPU time, not the shim's or other processes'."""

from __future__ import annotations

import torch

import profiles
from interpose import RankConfig, interposed
from interpose.clock import real_sleep


def _cfg(mode: str) -> RankConfig:
    gpu = profiles.get_gpu("h100")
    return RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time=mode)


def test_blocked_time_is_not_script_time():
    """CPU time, not wall time: a main thread that is blocked (descheduled, waiting) is not charged."""
    with interposed(_cfg("measured")) as rt:
        h0 = rt.clock.now_us()
        real_sleep(0.2)  # a real block, bypassing the patched time.sleep
        assert rt.clock.now_us() - h0 < 100_000


def test_zero_mode_charges_only_launches():
    with interposed(_cfg("zero")) as rt:
        x = torch.randn(256, 256, device="cuda")
        h0 = rt.clock.now_us()
        for _ in range(10):
            x = x + 1
        launch_us = rt.cfg.compute_model.launch_overhead_us
        assert rt.clock.now_us() - h0 == 10 * launch_us


def test_measured_mode_ranks_run_multithreaded_cpu_ops(tmp_path, repo_root):
    """The parent measures its host benchmark in a fresh process: had it run torch CPU ops itself, the
    forked rank's first multi-threaded CPU op would block for ever in OpenMP's barrier."""
    import subprocess
    import sys

    script = tmp_path / "omp.py"
    script.write_text(
        "import torch\nx = torch.zeros(20_000_000)\ny = torch.ones(8, device='cuda') * 2\nprint('ok', float(x.sum()))\n"
    )
    cmd = [sys.executable, "-m", "phantora", "run", "--scenario", "scenarios/h200x1.yaml", "--host-time",
           "measured", "--out", str(tmp_path / "run"), str(script)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=repo_root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok 0.0" in out.stdout
