"""Known values through collectives on the simulated GPU (rank 1 of 4, LocalSink): the functional
collectives DTensor, FSDP2 and expert-parallel MoE use carry values like the ProcessGroup path,
under the symmetric-ranks assumption (every rank holds what this one holds), and all-to-alls
report the bytes they send to each member."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from interpose import interposed
from interpose.distributed import LocalSink, install, uninstall


@pytest.fixture
def world(monkeypatch, cfg):
    """Rank 1 of 4 under the shim, ``init_process_group`` done; yields the sink."""
    for k, v in {"RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    cfg.rank, cfg.world_size, cfg.local_rank, cfg.local_world_size = 1, 4, 1, 4
    sink = LocalSink()
    install(sink)
    try:
        with interposed(cfg) as rt:
            dist.init_process_group("nccl")
            yield sink, rt
            dist.destroy_process_group()
    finally:
        uninstall()


def _a2a_calls(sink):
    return [c for c in sink.calls if c.kind == "all_to_all"]


def test_functional_all_to_all_of_counts_is_known(world):
    sink, rt = world
    counts = torch.tensor([5, 1, 2, 0, 7, 3, 4, 6], device="cuda")  # 2 experts per rank
    out = funcol.wait_tensor(funcol.all_to_all_single(counts, None, None, group=dist.group.WORLD))
    assert rt.values.known(out)
    # every rank holds my counts, so rank 1 receives my block for rank 1, [2, 0], from each rank
    assert out.tolist() == [2, 0] * 4
    assert _a2a_calls(sink)[-1].splits == (16, 16, 16, 16), "int64: 2 elements per member"


def test_all_to_all_single_with_splits_follows_the_routing(world):
    sink, rt = world
    ids = torch.tensor([0, 0, 0, 1, 3, 3], device="cuda")
    in_splits = torch.bincount(ids, minlength=4).tolist()
    assert in_splits == [3, 1, 0, 2]
    x = torch.randn(6, 32, device="cuda")  # unknown activations
    y = funcol.wait_tensor(funcol.all_to_all_single(x, [1] * 4, in_splits, group=dist.group.WORLD))
    assert y.shape == (4, 32) and not rt.values.known(y)
    assert _a2a_calls(sink)[-1].splits == (3 * 128, 128, 0, 2 * 128), "rows x 32 floats x 4 bytes"
    # the ProcessGroup path: a known input, uneven splits consistent with symmetric ranks
    tok = torch.arange(6, device="cuda")
    out = torch.empty(4, dtype=torch.long, device="cuda")
    dist.all_to_all_single(out, tok, [1] * 4, in_splits)
    assert out.tolist() == [3] * 4, "my rows for rank 1 (row 3), once from each rank"
    assert _a2a_calls(sink)[-1].splits == (24, 8, 0, 16)
    # output splits that symmetric ranks cannot produce leave the output unknown
    dist.all_to_all_single(out, tok, [2, 1, 1, 0], in_splits)
    assert not rt.values.known(out)


def test_functional_all_reduce_all_gather_reduce_scatter_broadcast_are_known(world):
    g = dist.group.WORLD
    v = torch.tensor([1, 2, 3, 4], device="cuda")
    assert funcol.wait_tensor(funcol.all_reduce(v, "sum", g)).tolist() == [4, 8, 12, 16]
    assert funcol.wait_tensor(funcol.all_reduce(v, "max", g)).tolist() == [1, 2, 3, 4]
    assert v.tolist() == [1, 2, 3, 4], "functional all_reduce leaves its input alone"
    assert funcol.wait_tensor(funcol.all_gather_tensor(v, 0, g)).tolist() == [1, 2, 3, 4] * 4
    assert funcol.wait_tensor(funcol.reduce_scatter_tensor(v, "sum", 0, g)).tolist() == [8]  # rank 1: 2 * 4
    assert funcol.wait_tensor(funcol.broadcast(v, 0, g)).tolist() == [1, 2, 3, 4]
    a, b = funcol.all_reduce_coalesced([v, v + 1], "sum", g)
    assert funcol.wait_tensor(a).tolist() == [4, 8, 12, 16] and funcol.wait_tensor(b).tolist() == [8, 12, 16, 20]
    unknown = torch.randn(400, device="cuda")[:4].long()
    assert funcol.wait_tensor(funcol.all_reduce(unknown, "sum", g)).tolist() == [0, 0, 0, 0]


def test_process_group_collectives_overwriting_an_unknown_output_make_it_known(world):
    _, rt = world
    out = torch.randn(400, device="cuda")[:8].long()  # unknown: computed from unknown floats
    assert not rt.values.known(out)
    dist.all_gather_into_tensor(out, torch.tensor([7, 9], device="cuda"))
    assert out.tolist() == [7, 9] * 4
    part = torch.randn(400, device="cuda")[:2].long()
    dist.reduce_scatter_tensor(part, torch.arange(8, device="cuda"))
    assert part.tolist() == [8, 12], "rank 1's chunk [2, 3], summed over 4 ranks"
    view = torch.randn(400, device="cuda")[:8].long()[:4]  # half its storage: stays unknown
    dist.all_gather_into_tensor(view, torch.tensor([1], device="cuda"))
    assert not rt.values.known(view)


def test_zeros_like_of_unknown_data_is_known(rt):
    scores = torch.randn(2, 16, 8, device="cuda").softmax(-1)  # unknown floats
    ids = torch.topk(scores, k=2, dim=-1).indices
    routing = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, ids, True)
    assert routing.sum(dim=(0, 1)).tolist() == [8] * 8, "balanced: 2*16*2 / 8 per expert"
    assert torch.full_like(scores, 3, dtype=torch.long).sum().item() == 3 * 256
    assert scores.new_ones(3, dtype=torch.int32).tolist() == [1, 1, 1]
    assert not rt.values.known(torch.zeros_like(scores)), "floats over 64 elements stay unknown"


def test_expanded_factory_output_keeps_its_value(rt):
    """``empty_strided`` with a stride-0 layout (DTensor rebuilds expanded tensors this way)."""
    t = torch.empty_strided((4, 3), (0, 1), dtype=torch.long, device="cuda")
    t.fill_(5)
    assert t.tolist() == [[5, 5, 5]] * 4


def test_set_timeout_is_served_when_torch_lacks_it(world):
    if getattr(dist.set_timeout, "__module__", "") != "interpose.distributed.c10d_patches":
        pytest.skip("this torch has its own torch.distributed.set_timeout")
    dist.set_timeout(timedelta(seconds=30))
    dist.set_timeout(timedelta(seconds=30), dist.new_group([0, 1]))
    with pytest.raises(TypeError, match="timedelta"):
        dist.set_timeout(30)


def test_uninstall_removes_the_served_set_timeout():
    had = hasattr(dist, "set_timeout")
    install(LocalSink())
    assert hasattr(dist, "set_timeout")
    uninstall()
    assert hasattr(dist, "set_timeout") == had
