"""The simulated nccl process group in one process (rank 1 of 4, LocalSink): what c10d,
DDP, FSDP2 and DTensor call reaches the sink with the right kind, size and key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from interpose.distributed import LocalSink, SimProcessGroup, install, uninstall


@pytest.fixture
def sink(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    s = LocalSink()
    install(s)
    yield s
    uninstall()


def in_subprocess(request) -> bool:
    """Run the calling test again in a fresh interpreter (returns True in the parent, which is then done).

    Backward passes start autograd worker threads, after which no later test in this session
    could fork rank processes; so tests that run backward do it in a child interpreter."""
    if os.environ.get("PHANTORA_TEST_CHILD"):
        return False
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                       env={**os.environ, "PHANTORA_TEST_CHILD": "1"}, capture_output=True, text=True,
                       cwd=request.config.rootpath)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return True


def kinds(sink, start=0):
    return [c.kind for c in sink.calls[start:]]


def test_nccl_and_default_backend_map_to_simulated_group(sink):
    dist.init_process_group("nccl")
    assert isinstance(dist.group.WORLD, SimProcessGroup)
    assert dist.get_rank() == 1 and dist.get_world_size() == 4
    dist.destroy_process_group()
    dist.init_process_group()  # backend=None
    assert isinstance(dist.group.WORLD, SimProcessGroup)


def test_collectives_record_kind_bytes_key_and_call_site(sink):
    dist.init_process_group("nccl")
    t = torch.ones(256)
    dist.all_reduce(t)
    assert t[0].item() == 4.0, "SUM over 4 symmetric ranks"
    out = torch.zeros(4 * 256)
    dist.all_gather_into_tensor(out, t)
    dist.reduce_scatter_tensor(torch.zeros(64), t)
    dist.broadcast(t, src=0)
    dist.barrier()
    w = dist.all_reduce(t, async_op=True)
    assert w.is_completed() and w.wait()
    c = sink.calls
    assert kinds(sink) == ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "barrier", "all_reduce"]
    assert [x.nbytes for x in c[:4]] == [1024, 4096, 1024, 1024]
    assert [x.key for x in c] == [f"0#{i}" for i in range(6)]
    assert c[3].root == 0 and c[0].reduce_op == "sum"
    assert c[0].call_site.endswith(f"test_dist_backend.py:{test_collectives_record_kind_bytes_key_and_call_site.__code__.co_firstlineno + 3}")
    assert c[0].ranks == (0, 1, 2, 3)


def test_subgroups_and_p2p_keys(sink):
    dist.init_process_group("nccl")
    g = dist.new_group([1, 3])
    dist.all_reduce(torch.ones(8), group=g)
    assert sink.calls[-1].ranks == (1, 3) and sink.calls[-1].key.endswith("#0")
    ops = [dist.P2POp(dist.isend, torch.ones(3), 2), dist.P2POp(dist.irecv, torch.ones(3), 0)]
    for w in dist.batch_isend_irecv(ops):
        w.wait()
    send, recv = sink.calls[-2:]
    assert (send.kind, send.ranks, send.key.split(":")[-1]) == ("send", (1, 2), "1-2#0")
    assert (recv.kind, recv.ranks, recv.key.split(":")[-1]) == ("recv", (0, 1), "0-1#0")


def test_ddp_broadcasts_then_allreduces_gradients(sink, request):
    if in_subprocess(request):
        return
    dist.init_process_group("nccl")
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 16))
    n = len(sink.calls)
    model(torch.randn(2, 16)).sum().backward()
    assert kinds(sink, n) == ["all_reduce"]
    assert sink.calls[-1].nbytes == (16 * 16 + 16) * 4
    assert sink.waited, "DDP waits on the bucket's future at the end of backward"


def test_fsdp2_and_tensor_parallel_on_a_2d_mesh(sink, request):
    if in_subprocess(request):
        return
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    dist.init_process_group("nccl")
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    parallelize_module(mlp, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
    fully_shard(mlp, mesh=mesh["dp"])
    n = len(sink.calls)
    mlp(torch.randn(4, 8)).sum().backward()
    new = sink.calls[n:]
    tp_ranks, dp_ranks = (0, 1), (1, 3)  # rank 1 of a (dp=2, tp=2) mesh
    assert any(c.kind == "all_reduce" and c.ranks == tp_ranks for c in new), "RowwiseParallel output"
    assert any(c.kind == "all_gather" and c.ranks == dp_ranks for c in new), "FSDP unshard"
    assert any(c.kind == "reduce_scatter" and c.ranks == dp_ranks for c in new), "FSDP grad reduce"


def test_uninstall_restores_torch(sink):
    uninstall()
    assert dist.Backend.default_device_backend_map["cuda"] == "nccl"
    install(sink)


def test_object_collectives_with_local_sink(sink):
    dist.init_process_group("nccl")
    objs = [None] * 4
    dist.all_gather_object(objs, {"a": 1})
    assert objs == [{"a": 1}] * 4
    lst = [None, None]
    dist.broadcast_object_list(lst, src=1)  # this rank (1) is the root
    assert lst == [None, None]
    assert [c.kind for c in sink.calls] == ["all_gather_object", "broadcast_object"]
