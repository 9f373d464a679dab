"""The recorder and ``phantora profile`` on CPU (dry-run mode): what would run on a GPU box, minus CUDA."""

from __future__ import annotations

import gzip
import json

import torch
from click.testing import CliRunner

from phantora.commands.profile import profile
from profiles.recorder import KernelRecorder
from profiles.store import read_profile
from profiles.timeline import replay_trace
from profiles.timing import mutated_inputs, time_call

aten = torch.ops.aten

SCRIPT = """
import sys, torch
n = int(sys.argv[1])
w = torch.randn(32, 32)
opt = torch.optim.SGD([w.requires_grad_()], lr=0.1)
for _ in range(n):
    x = torch.randn(8, 32)
    (x @ w).relu().sum().backward()
    opt.step(); opt.zero_grad()
print("done", n)
"""


def test_in_place_ops_are_timed_on_clones():
    assert mutated_inputs(aten.add_.Tensor) == ({0}, {"self"})
    x = torch.ones(16)
    t = time_call(aten.add_.Tensor, (x, x), {}, repeats=3, warmup=1)
    assert torch.equal(x, torch.ones(16)) and t.n == 3 and t.dur_us > 0


def test_recorder_records_each_signature_once_and_counts_calls():
    rec = KernelRecorder(device_type="cpu", repeats=3, warmup=1)
    a = torch.randn(8, 8)
    with rec:
        for _ in range(5):
            b = a @ a
            b.view(-1)  # a view: no kernel, no entry
            b.add_(1.0)
    es = {e.op: e for e in rec.entries()}
    assert set(es) == {"aten.mm.default", "aten.add_.Tensor"}
    assert es["aten.mm.default"].calls == 5 and es["aten.mm.default"].n == 3
    assert es["aten.mm.default"].flops == 2 * 8 * 8 * 8 and es["aten.mm.default"].family == "matmul"
    assert es["aten.add_.Tensor"].host_gap_us is not None
    assert len(rec.trace) == 10


def test_recorder_sees_the_local_kernels_of_a_dtensor_op(monkeypatch):
    """A DTensor op is recorded as the kernels it runs on its local shard (rank 1 of 4 here, on the
    simulated process group), not as one op on the global shapes."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    from interpose.distributed import LocalSink, install, uninstall

    for k, v in {"RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    install(LocalSink())
    try:
        dist.init_process_group("nccl")
        mesh = init_device_mesh("cpu", (4,))
        x = distribute_tensor(torch.randn(16, 8), mesh, [Shard(0)])
        w = distribute_tensor(torch.randn(8, 8), mesh, [Replicate()])
        rec = KernelRecorder(device_type="cpu", repeats=2, warmup=0)
        with rec:
            x @ w
        mm = [e for e in rec.entries() if e.op == "aten.mm.default"]
        assert [e.shapes for e in mm] == ["4x8;8x8"], "timed on rank 1's shard, not on 16x8"
    finally:
        uninstall()


def test_profile_command_dry_run_writes_profile_and_trace(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out, trace = tmp_path / "p.jsonl", tmp_path / "t.gz"
    r = CliRunner().invoke(
        profile,
        ["--device", "cpu", "--gpu-name", "h100", "--out", str(out), "--trace", str(trace),
         "--repeats", "3", "--warmup", "1", "--json", str(script), "3"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.strip().splitlines()[-1])
    assert row["recorded"] > 3 and row["failed"] == 0
    header, entries = read_profile(out)
    assert header.gpu == "h100" and "train.py 3" in header.source
    assert any(k.startswith("aten.mm.default|8x32;32x32") for k in entries)
    with gzip.open(trace, "rt") as f:
        keys = f.read().splitlines()
    assert all(k in entries for k in keys)
    rep = replay_trace(keys, entries)
    assert rep.missing == 0 and rep.total_us >= rep.gpu_busy_us > 0


def test_distributed_script_runs_as_rank0_of_a_fake_group(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import torch, torch.distributed as dist\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "dist.init_process_group('nccl')\n"
        "assert dist.get_world_size() == 4 and dist.get_rank() == 0\n"
        "m = DDP(torch.nn.Linear(16, 16))\n"
        "for _ in range(2):\n"
        "    m(torch.randn(4, 16)).sum().backward()\n"
    )
    out = tmp_path / "p.jsonl"
    r = CliRunner().invoke(
        profile, ["--device", "cpu", "--gpu-name", "h100", "--out", str(out), "--world-size", "4", "--repeats", "2", str(script)]
    )
    assert r.exit_code == 0, r.output
    _, entries = read_profile(out)
    assert any(e.op == "aten.mm.default" for e in entries.values())


def test_kernels_only_fills_cache_and_file(tmp_path):
    from profiles.argspec import call_spec
    from profiles.cache import ProfileCache

    spec = call_spec(aten.mm.default, (torch.empty(12, 34), torch.empty(34, 5)), {})
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps(spec) + "\n")
    args = ["--device", "cpu", "--gpu-name", "h100", "--kernels-only", str(missing), "--repeats", "2", "--json"]
    r = CliRunner().invoke(profile, [*args, "--cache", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "k.jsonl")])
    assert r.exit_code == 0, r.output
    assert ProfileCache(tmp_path / "c.sqlite").get("h100", spec["key"]) is not None
    assert spec["key"] in read_profile(tmp_path / "k.jsonl")[1]


def test_user_errors_are_one_line():
    r = CliRunner().invoke(profile, ["--device", "cpu", "--out", "x.jsonl"])
    assert r.exit_code != 0 and "give one of SCRIPT, --runs FILE or --kernels-only FILE" in r.output
    r = CliRunner().invoke(profile, ["--gpu-name", "h100", "--out", "x.jsonl", "nope.py"])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_recorder_sees_the_ops_the_shim_sees_under_inference_mode_and_in_torch_tensor():
    """Composite ops that reach the mode under inference_mode are decomposed (the trace has addmm, as the
    shim's, not linear), and torch.tensor(data, device=...) shows its copy (CPU tensors lifted, as the
    shim lifts them); the mode's patches are undone once, at the outermost exit."""
    sync, lift = torch.cuda.synchronize, torch._C._only_lift_cpu_tensors()
    lin = torch.nn.Linear(8, 4)
    rec = KernelRecorder(device_type="cpu", repeats=1, warmup=0)
    with rec:
        with torch.inference_mode():
            lin(torch.ones(2, 8))
        assert torch._C._only_lift_cpu_tensors()
    ops = [k.split("|")[0] for k in rec.trace]
    assert "aten.addmm.default" in ops and "aten.linear.default" not in ops
    assert torch.cuda.synchronize is sync and torch._C._only_lift_cpu_tensors() == lift


def test_value_reads_and_blocking_d2h_copies_wait_for_the_gpu_before_their_call_is_timed():
    """Their first-call cost must be host work: the recorder drains the GPU queue before timing them."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    rec = KernelRecorder(device_type="cuda")
    with FakeTensorMode(allow_non_fake_inputs=True):
        g = torch.empty(4, device="cuda")
        c = torch.empty(4)
    cpu = {"device": torch.device("cpu")}
    assert rec._waits_for_gpu(aten._local_scalar_dense.default, (g,), {})
    assert rec._waits_for_gpu(aten.nonzero.default, (g,), {})
    assert rec._waits_for_gpu(aten._to_copy.default, (g,), cpu)
    assert not rec._waits_for_gpu(aten._to_copy.default, (g,), {**cpu, "non_blocking": True})
    assert not rec._waits_for_gpu(aten._to_copy.default, (c,), {"device": torch.device("cuda")})  # H2D
    assert not rec._waits_for_gpu(aten.add.Tensor, (g, g), {})
    assert not KernelRecorder(device_type="cpu")._waits_for_gpu(aten.nonzero.default, (c,), {})
