"""``phantora run`` end to end on tiny scripts.

Most tests drive the click command in this process (the rank is still a forked child, and
torch is already imported, so each takes about a second); one goes through a real
``python -m phantora`` subprocess to check what a user's terminal sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from phantora.commands.run import default_out_dir, run

TINY = textwrap.dedent("""
    import sys, time
    import torch
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 3
    burn = "--burn-cpu" in sys.argv
    model = torch.nn.Linear(256, 256).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        t0 = time.time()
        x = torch.randn(64, 256, device="cuda")
        model(x).sum().backward()
        if burn:  # real CPU work between kernel launches
            sum(i * i for i in range(300_000))
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        print(f"step {step} | {(time.time() - t0) * 1e3:.3f} ms", flush=True)
    print("argv", sys.argv[1:])
""")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.py"
    p.write_text(TINY)
    return p


def cli(*args: str):
    return CliRunner().invoke(run, list(args), catch_exceptions=False)


def json_rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_default_out_dir_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = default_out_dir("examples/gpt/train.py", "h100x1", now)
    assert first == Path("runs/train-h100x1-20260102-030405")
    first.mkdir(parents=True)
    assert default_out_dir("train.py", "h100x1", now).name == "train-h100x1-20260102-030405-2"


def test_bad_scenario_is_one_line(tmp_path: Path, tiny: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngpu: h900\n")
    r = cli("--scenario", str(bad), str(tiny))
    assert r.exit_code == 2
    assert r.output.strip() == f"phantora: {bad}: gpu: unknown GPU 'h900'; valid: h100, h200"


def test_options_after_script_go_to_the_script(tmp_path: Path, tiny: Path) -> None:
    r = cli("--json", "--out", str(tmp_path / "o"), str(tiny), "--steps", "2", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["argv"] == ["--steps", "2", "--json"]
    assert s["iterations"] == 2
    for f in ("ops.parquet", "trace.json"):
        assert (tmp_path / "o" / f).is_file()


def test_module_launch_like_torchrun_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`phantora run -m pkg.train` runs a module from the working directory, as `torchrun -m` does."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "util.py").write_text("STEPS = 2\n")
    (tmp_path / "pkg" / "train.py").write_text(TINY.replace("steps = int(", "from pkg.util import STEPS\nsteps = STEPS or int("))
    monkeypatch.chdir(tmp_path)
    r = cli("--json", "--out", str(tmp_path / "o"), "-m", "pkg.train", "--steps", "9")
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["iterations"] == 2 and s["argv"] == ["--steps", "9"]
    r = cli("-m", "pkg.nope")
    assert r.exit_code == 2 and r.output.strip().startswith("phantora: -m: no module named 'pkg.nope'")
    r = cli(str(tmp_path / "missing.py"))
    assert r.exit_code == 2 and "no such script file" in r.output


def test_simulated_times_deterministic_with_zero_host_time(tmp_path: Path, tiny: Path) -> None:
    runs = []
    for i in range(2):
        r = cli("--json", "--host-time", "zero", "--out", str(tmp_path / f"o{i}"), str(tiny), "--steps", "3")
        assert r.exit_code == 0, r.output
        runs.append(json_rows(r.output))
    assert [row["row"] for row in runs[0]] == ["iteration"] * 3 + ["summary"]
    assert runs[0][:-1] == runs[1][:-1]
    mean = runs[0][-1]["mean_ms_per_iter_excluding_first"]
    assert mean == runs[1][-1]["mean_ms_per_iter_excluding_first"]
    assert 0 < mean < 5  # microsecond-scale kernels, not this CPU's wall time


def test_measured_host_time_counts_cpu_work_zero_does_not(tmp_path: Path, tiny: Path) -> None:
    means = {}
    for mode in ("zero", "measured"):
        r = cli("--json", "--host-time", mode, "--out", str(tmp_path / mode), str(tiny), "--burn-cpu")
        assert r.exit_code == 0, r.output
        means[mode] = json_rows(r.output)[-1]["mean_ms_per_iter_excluding_first"]
    assert means["measured"] > means["zero"]


def test_crashing_script_prints_traceback_and_fails(tmp_path: Path) -> None:
    p = tmp_path / "crash.py"
    p.write_text("import torch\nx = torch.ones(4, device='cuda')\n\ndef f():\n    raise ValueError('boom')\n\nf()\n")
    r = cli("--out", str(tmp_path / "o"), str(p))
    assert r.exit_code == 1
    assert "Traceback" in r.output and "ValueError: boom" in r.output and "crash.py" in r.output
    assert (tmp_path / "o" / "summary.json").is_file()  # partial results are kept


def test_sys_exit_code_is_propagated_and_chdir_isolated(tmp_path: Path) -> None:
    p = tmp_path / "exit3.py"
    p.write_text("import sys, os\nos.chdir('/')\nsys.exit(3)\n")
    before = Path.cwd()
    r = cli("--out", str(tmp_path / "o"), str(p))
    assert r.exit_code == 3
    assert "exited with code 3" in r.output
    assert Path.cwd() == before


def test_killed_rank_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "die.py"
    p.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    r = cli("--out", str(tmp_path / "o"), str(p))
    assert r.exit_code == 1
    assert "died of SIGKILL" in r.output


def test_timeout_kills_a_hung_script(tmp_path: Path) -> None:
    p = tmp_path / "hang.py"
    p.write_text("import threading\nthreading.Event().wait()\n")
    t0 = time.monotonic()
    r = cli("--timeout", "2", "--out", str(tmp_path / "o"), str(p))
    assert r.exit_code == 1
    assert "did not finish within 2 s" in r.output
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_real_subprocess_streams_script_output_and_table(tmp_path: Path, tiny: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "phantora", "run", "--out", str(tmp_path / "o"), str(tiny)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "step 2 |" in r.stdout  # the script's own output
    assert "ms/iter" in r.stdout and "peak alloc" in r.stdout  # the summary table
    assert r.stdout.index("step 2 |") < r.stdout.index("ms/iter")
