"""run_script runs a script as __main__, reports iterations, exit codes, errors and OOM."""

from __future__ import annotations

import sys
import textwrap

import profiles
from interpose import RankConfig, RankResult, run_script

TRAIN = """
import sys, time
import torch, torch.nn as nn
assert __name__ == "__main__"
steps = int(sys.argv[1])
model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).cuda()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for step in range(steps):
    x = torch.randn(32, 256).cuda(non_blocking=True)
    loss = model(x).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    print(f"step {step} loss {loss.item():.3f}")
"""


def _cfg(**kw) -> RankConfig:
    gpu = profiles.get_gpu("h100")
    return RankConfig(
        gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero", **kw
    )


def _script(tmp_path, body: str):
    p = tmp_path / "train.py"
    p.write_text(textwrap.dedent(body))
    return p


def test_training_script_reports_iterations_and_ops(tmp_path, capsys):
    argv_before = sys.argv[:]
    r = run_script(str(_script(tmp_path, TRAIN)), ["3"], _cfg())
    assert isinstance(r, RankResult)
    assert r.exit_code == 0 and r.error is None and not r.oom
    assert "step 2 loss 0.000" in capsys.readouterr().out
    assert len(r.iterations) == 3
    starts_ends = [t for it in r.iterations for t in it]
    assert starts_ends == sorted(starts_ends)
    assert r.iterations[1][1] - r.iterations[1][0] > 0
    assert r.peak_allocated_bytes > 0 and r.peak_reserved_bytes >= r.peak_allocated_bytes
    assert r.gpu_busy_us > 0 and r.end_time_us >= r.iterations[-1][1]
    assert any(o.op == "aten.addmm.default" for o in r.ops)
    assert sys.argv == argv_before
    # same deterministic result the second time (host_time="zero")
    r2 = run_script(str(_script(tmp_path, TRAIN)), ["3"], _cfg())
    assert r2.iterations == r.iterations and len(r2.ops) == len(r.ops)


def test_script_exception_is_reported_with_user_frames(tmp_path):
    body = """
    import torch
    def inner():
        raise ValueError("boom")
    x = torch.ones(2, device="cuda")
    inner()
    """
    r = run_script(str(_script(tmp_path, body)), [], _cfg())
    assert r.exit_code == 1 and not r.oom
    assert r.error.startswith("Traceback (most recent call last):")
    assert "ValueError: boom" in r.error and "in inner" in r.error
    assert "runpy" not in r.error and "interpose" not in r.error


def test_system_exit_code_is_honoured(tmp_path):
    assert run_script(str(_script(tmp_path, "import sys; sys.exit(3)")), [], _cfg()).exit_code == 3
    assert run_script(str(_script(tmp_path, "import sys; sys.exit()")), [], _cfg()).exit_code == 0
    r = run_script(str(_script(tmp_path, "raise SystemExit('bad args')")), [], _cfg())
    assert r.exit_code == 1 and r.error is None


def test_oom_is_flagged(tmp_path):
    body = """
    import torch
    keep = [torch.empty(1 << 30, dtype=torch.uint8, device="cuda") for _ in range(8)]
    """
    r = run_script(str(_script(tmp_path, body)), [], _cfg(memory_limit_bytes=4 << 30))
    assert r.oom and r.exit_code == 1
    assert "OutOfMemoryError: CUDA out of memory" in r.error


def test_shim_is_removed_after_run(tmp_path):
    import time

    import torch

    run_script(str(_script(tmp_path, "import torch; torch.zeros(1, device='cuda')")), [], _cfg())
    assert not torch.cuda.is_available()
    assert type(torch.zeros(1)) is torch.Tensor
    t = time.perf_counter()
    assert t > 0


def test_module_file_is_found_without_importing_the_package(tmp_path):
    """`-m pkg.train`: the package's __init__ must first run under the shim, not while looking it up."""
    import sys

    from interpose.runner import module_file

    pkg = tmp_path / "lookup_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported too early')\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "train.py").write_text("")
    (pkg / "sub" / "__main__.py").write_text("")
    assert module_file("lookup_pkg.sub.train", str(tmp_path)) == str(pkg / "sub" / "train.py")
    assert module_file("lookup_pkg.sub", str(tmp_path)) == str(pkg / "sub" / "__main__.py")
    assert module_file("lookup_pkg.nope", str(tmp_path)) is None
    assert "lookup_pkg" not in sys.modules
