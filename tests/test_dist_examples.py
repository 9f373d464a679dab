"""End to end: the shipped distributed examples under the shim, several ranks, one clock."""

from __future__ import annotations

import pytest

from netsim.alpha_beta import AlphaBetaNetwork
from phantora.results import build_summary
from phantora.run import RunJob, execute, simulate
from profiles import build_compute_model, get_gpu

TINY = ["--n-layer", "1", "--n-embd", "64", "--n-head", "2", "--seq-len", "32", "--vocab-size", "256",
        "--batch-size", "2", "--steps", "3"]


def per_iteration(o):
    """summary.json's per-iteration rows (slowest rank's ms, breakdown means over ranks) of an outcome."""
    return build_summary(results=o.results, scenario={}, script="", argv=[], host_time="zero", wall_s=0)["breakdown"]


def job(repo_root, example, nnodes, nproc, extra=()):
    gpu = get_gpu("h100")
    return RunJob(script=str(repo_root / "examples" / example / "train.py"), argv=[*TINY, *extra],
                        nnodes=nnodes, nproc_per_node=nproc, gpu=gpu,
                        compute_model=build_compute_model("roofline", gpu),
                        network=AlphaBetaNetwork(gpus_per_host=nproc), host_time="zero")


@pytest.mark.slow
def test_ddp_two_hosts_deterministic(repo_root):
    a = execute(job(repo_root, "ddp", 2, 2))
    b = execute(job(repo_root, "ddp", 2, 2))
    assert len(a.iteration_ms()) == 3
    assert a.iteration_ms() == b.iteration_ms(), "same script + scenario -> same simulated times"
    rows = lambda o: sorted((c.key, c.start_us, c.end_us) for c in o.collectives)  # noqa: E731
    assert rows(a) == rows(b)
    kinds = {c.kind for c in a.collectives}
    assert "all_reduce" in kinds and "broadcast" in kinds
    grads = [c for c in a.collectives if c.kind == "all_reduce" and c.ranks == 4]
    assert grads and all(c.transport == "ring" for c in grads)
    s = per_iteration(a)
    assert all(r["compute_ms"] > 0 for r in s)
    assert all(abs(r["compute_ms"] + r["exposed_comm_ms"] + r["idle_ms"] - r["sim_ms"]) < 0.05 * r["sim_ms"] + 1e-3
               for r in s[1:])


@pytest.mark.slow
def test_ddp_find_unused_parameters(repo_root):
    """The reducer's C++ pinned staging buffer (asserted ``is_pinned()``) works on the CPU build."""
    o = execute(job(repo_root, "ddp", 1, 2, ["--find-unused-parameters"]))
    assert len(o.iteration_ms()) == 3
    used_maps = [c for c in o.collectives if c.kind == "all_reduce" and c.dtype == "int32"]
    assert len(used_maps) >= 3, "one used-parameter map all-reduce per iteration"


@pytest.mark.slow
def test_fsdp2_and_tp2d_run(repo_root):
    f = execute(job(repo_root, "fsdp2", 1, 2))
    assert {"all_gather", "reduce_scatter"} <= {c.kind for c in f.collectives}
    t = execute(job(repo_root, "tp2d", 1, 4, ["--tp", "2"]))
    groups = {(c.kind, c.ranks) for c in t.collectives}
    assert ("all_reduce", 2) in groups, "TP all-reduces within tp groups of 2"
    assert len(t.iteration_ms()) == 3


@pytest.mark.slow
def test_simulate_writes_tables_and_json(repo_root, tmp_path, capsys):
    import json

    import pandas as pd

    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    j = RunJob.from_scenario(scenario, script=str(repo_root / "examples/ddp/train.py"), argv=TINY,
                             stdout_to_stderr=True)
    code = simulate(j, scenario=scenario, out_dir=tmp_path, as_json=True, isolate=True)
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    its = [r for r in lines if r.get("row") == "iteration"]
    assert [r["iteration"] for r in its] == [0, 1, 2]
    assert all({"sim_ms", "compute_ms", "exposed_comm_ms", "idle_ms"} <= set(r) for r in its)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ranks"] == 2 and len(summary["breakdown"]) == 3
    assert (tmp_path / "trace.json").exists() and (tmp_path / "ops.parquet").exists()
    assert lines[-1]["ranks"] == 2 and lines[-1]["mean_ms_per_iter_excluding_first"] > 0
    coll = pd.read_parquet(tmp_path / "collectives.parquet")
    assert {"kind", "bytes", "group", "start_us", "end_us", "busbw_gbps", "transport"} <= set(coll.columns)
    bd = pd.read_parquet(tmp_path / "breakdown.parquet")
    assert sorted(bd["rank"].unique()) == [0, 1]


@pytest.mark.slow
def test_simulate_reports_failing_rank(repo_root, tmp_path, capsys):
    from phantora.scenario import scenario_from_dict

    scenario = scenario_from_dict({"name": "t", "gpu": "h100", "hosts": 1, "gpus_per_host": 2})
    j = RunJob.from_scenario(scenario, script=str(repo_root / "tests/data/multirank/raises.py"), argv=[])
    code = simulate(j, scenario=scenario, out_dir=None, as_json=False, isolate=True)
    assert code == 1
    err = capsys.readouterr().err
    assert "rank 1 failed" in err and "ValueError: boom on rank 1" in err


def test_object_collectives_relay_real_values(repo_root):
    gpu = get_gpu("h100")
    out = execute(RunJob(script=str(repo_root / "tests/data/multirank/objects.py"), argv=[],
                         nnodes=1, nproc_per_node=2, gpu=gpu,
                         compute_model=build_compute_model("roofline", gpu),
                         network=AlphaBetaNetwork(gpus_per_host=2)))
    assert [c.kind for c in out.collectives] == ["all_gather_object", "broadcast_object", "all_reduce"]


@pytest.mark.slow
@pytest.mark.parametrize(("example", "extra"), [("ddp", []), ("fsdp2", []), ("tp2d", ["--tp", "2"])])
def test_symmetric_run_equals_full_run(repo_root, example, extra):
    """Executing rank 0 alone (--symmetric) gives the full run's iteration times for SPMD jobs, to the
    network's 1 ns: collectives start at whole ns, so ranks' iterations may differ below it."""
    from dataclasses import replace

    full = execute(job(repo_root, example, 2, 2, extra))
    sym = execute(replace(job(repo_root, example, 2, 2, extra), symmetric=True))
    assert sorted(sym.results) == [0] and sorted(full.results) == [0, 1, 2, 3]
    assert sym.iteration_ms() == pytest.approx(full.iteration_ms(), rel=1e-9, abs=1e-6)  # ms
    full_rows = {c.key: (c.start_us, c.end_us) for c in full.collectives}
    sym_rows = {c.key: (c.start_us, c.end_us) for c in sym.collectives}
    assert sym_rows and all(full_rows[k] == pytest.approx(v) for k, v in sym_rows.items()), \
        "rank 0's collectives start and end at the same times"


@pytest.mark.slow
def test_pipeline_schedules_bubble_and_memory(repo_root):
    """torch.distributed.pipelining on 4 stages, 8 micro-batches: the idle share is the textbook
    bubble (p - 1) / (m + p - 1) = 3/11, and 1F1B holds fewer activations than GPipe."""
    argv = ["--layers", "4", "--dim", "1024", "--batch-size", "16", "--seq-len", "512", "--microbatches", "8",
            "--steps", "3"]
    out = {}
    for sched in ("gpipe", "1f1b"):
        j = job(repo_root, "pipeline", 1, 4)
        j.argv = [*argv, "--schedule", sched]
        out[sched] = execute(j)
    for o in out.values():
        last = per_iteration(o)[-1]
        assert last["idle_ms"] / last["sim_ms"] == pytest.approx(3 / 11, abs=0.04)
        assert {c.kind for c in o.collectives} >= {"send_recv"}
    peak = {k: max(r.peak_allocated_bytes for r in o.results.values()) for k, o in out.items()}
    assert peak["1f1b"] < peak["gpipe"]


DTENSOR_SCRIPT = """
import os, torch, torch.nn as nn, torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
dist.init_process_group("nccl")
torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
mesh = init_device_mesh("cuda", (dist.get_world_size(),))
with torch.device("meta"):
    m = nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256))
parallelize_module(m, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
m.to_empty(device="cuda")
for p in m.parameters():
    nn.init.normal_(p, std=0.02)  # random init of DTensors (torchtitan's init_weights)
opt = torch.optim.AdamW(m.parameters())
for _ in range(2):
    m(torch.randn(8, 256, device="cuda")).sum().backward()
    opt.step()
    opt.zero_grad()
torch.cuda.synchronize()
"""


@pytest.mark.slow
def test_dtensor_local_ops_are_simulated(tmp_path):
    """Ops inside DTensor's dispatch (local matmuls, the optimizer on sharded params, random init)
    run under the shim: they are timed and their memory is counted."""
    script = tmp_path / "dt.py"
    script.write_text(DTENSOR_SCRIPT)
    gpu = get_gpu("h100")
    o = execute(RunJob(script=str(script), argv=[], nnodes=1, nproc_per_node=2, gpu=gpu,
                       compute_model=build_compute_model("roofline", gpu),
                       network=AlphaBetaNetwork(gpus_per_host=2), host_time="zero"))
    ops = [r.op for r in o.results[0].ops]
    # per step: 2 forward linears + their input/weight grads on the local shards
    assert sum(op in ("aten.mm.default", "aten.addmm.default") for op in ops) >= 2 * 5
    assert any("_fused_adam" in op or "_foreach" in op for op in ops), "optimizer on DTensor params"
    assert o.results[0].peak_allocated_bytes >= 3 * (256 * 1024 * 2 // 2) * 4, "params + Adam states"
