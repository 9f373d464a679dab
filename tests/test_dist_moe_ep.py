"""Expert parallelism on 4 simulated ranks: routing on the simulated GPU decides the all-to-all split
sizes, the collectives table shows them, and the value policy changes them.

``EP_SCRIPT`` is a plain torch.distributed program (it runs unchanged under ``torchrun``): the
per-expert token counts go through a functional all-to-all (as torchtitan's dispatcher does), the
tokens through ``dist.all_to_all_single`` with the split sizes read back from those counts, and the
expert outputs come back through the autograd all-to-all (so backward issues one too)."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
import torch

from interpose.values import IndexSource, ValuePolicy
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork
from phantora.results import write_tables
from phantora.run import RunJob, execute
from profiles import build_compute_model, get_gpu

E, K, T, D, WORLD = 16, 2, 256, 1024, 4

EP_SCRIPT = f'''
import os
import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

E, K, T, D = {E}, {K}, {T}, {D}
dist.init_process_group("nccl")
world = dist.get_world_size()
torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
group = dist.group.WORLD
gate = torch.nn.Linear(D, E, device="cuda")
expert = torch.nn.Linear(D, D, device="cuda")
opt = torch.optim.SGD([*gate.parameters(), *expert.parameters()], lr=0.1)
for step in range(2):
    x = torch.randn(T, D, device="cuda")
    weights, ids = gate(x).softmax(-1).topk(K, dim=-1)
    counts = torch.bincount(ids.flatten(), minlength=E)
    recv_counts = funcol.wait_tensor(funcol.all_to_all_single(counts, None, None, group))
    in_splits = counts.view(world, -1).sum(1).tolist()
    out_splits = recv_counts.view(world, -1).sum(1).tolist()
    order = ids.flatten().argsort(stable=True)
    recv = torch.empty(sum(out_splits), D, device="cuda")
    dist.all_to_all_single(recv, x[order // K], out_splits, in_splits)
    back = funcol.all_to_all_single_autograd(torch.relu(expert(recv)), in_splits, out_splits, group)
    out = torch.zeros(T * K, D, device="cuda").index_copy(0, order, funcol.wait_tensor(back))
    loss = (out * weights.flatten()[:, None]).sum()
    loss.backward()
    opt.step()
    opt.zero_grad()
torch.cuda.synchronize()
print("splits", dist.get_rank(), in_splits, out_splits, flush=True)
'''


def expected_splits(policy: str) -> list[int]:
    """Tokens rank r sends to each rank in step 0: the policy's first top-k draw (every rank draws
    the same, as its generator has the same seed), counted per expert, summed per owning rank."""
    ids = IndexSource(ValuePolicy.parse(policy)).draw(T, E, K)
    return torch.bincount(ids.flatten(), minlength=E).view(WORLD, -1).sum(1).tolist()


def run(tmp_path, policy: str):
    script = tmp_path / "ep.py"
    script.write_text(EP_SCRIPT)
    gpu = get_gpu("h200")
    o = execute(RunJob(script=str(script), argv=[], nnodes=2, nproc_per_node=WORLD // 2, gpu=gpu,
                       compute_model=build_compute_model("roofline", gpu),
                       network=FlowNetwork.build(2, WORLD // 2, NetworkConfig()),
                       host_time="zero", values=ValuePolicy.parse(policy)))
    out = tmp_path / policy.replace(":", "_")
    write_tables(out, o.results, o.collectives)
    return o, pd.read_parquet(out / "collectives.parquet")


def token_a2as(coll):
    """Float all-to-alls in order: per step the dispatch, the combine, the combine's backward."""
    return coll[(coll.kind == "all_to_all") & (coll.dtype == "float32")].sort_values("start_us")


@pytest.mark.slow
def test_all_to_all_splits_follow_the_policy(tmp_path):
    bal, bal_coll = run(tmp_path, "balanced")
    skew, skew_coll = run(tmp_path, "skewed:1.5")
    counts = bal_coll[(bal_coll.kind == "all_to_all") & (bal_coll.dtype == "int64")]
    assert len(counts) == 2 and all(
        [list(r) for r in m] == [[E // WORLD * 8] * WORLD] * WORLD for m in counts.splits
    ), "per-expert counts: E/world int64 to each rank"
    row_bytes = D * 4
    for coll, policy in ((bal_coll, "balanced"), (skew_coll, "skewed:1.5")):
        a2a = token_a2as(coll)
        assert len(a2a) == 2 * 3, "dispatch, combine and the combine's backward, per step"
        send = expected_splits(policy)
        dispatch = [list(r) for r in a2a.splits.iloc[0]]
        assert dispatch == [[s * row_bytes for s in send]] * WORLD, "every rank sends the policy's splits"
        combine = [list(r) for r in a2a.splits.iloc[1]]
        assert combine == [list(c) for c in zip(*dispatch, strict=True)], "the combine sends them back"
        assert a2a.bytes.iloc[0] == max(WORLD * send[0], sum(send)) * row_bytes
    bal_send, skew_send = expected_splits("balanced"), expected_splits("skewed:1.5")
    assert bal_send == [T * K // WORLD] * WORLD
    assert skew_send != bal_send and skew_send[0] > 2 * skew_send[-1] and sum(skew_send) == T * K
    # the hot rank receives world x its share and its expert computes on all of it
    mm_rows = {r: {int(op.shapes.split(";")[1].split("x")[0]) for op in res.ops if op.op == "aten.addmm.default"}
               for r, res in skew.results.items()}  # addmm(bias, input, weight): input rows
    assert all(WORLD * skew_send[r] in mm_rows[r] for r in range(WORLD))
    # the same bytes, most of them to one rank (whose NIC takes them from the other host): the skewed
    # dispatch takes longer on the network
    dur = lambda a2a: float((a2a.end_us - a2a.start_us).iloc[0])  # noqa: E731
    assert dur(token_a2as(skew_coll)) > 1.3 * dur(token_a2as(bal_coll))
    assert len(bal.iteration_ms()) == len(skew.iteration_ms()) == 2


def _torchtitan_assets(root):
    """What ``qwen3_moe_debug`` reads from ``./tests/assets``: a word-level tokenizer (made here with
    ``tokenizers``) and a few lines of c4-like text; torchtitan's wheel ships neither."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [f"w{i}" for i in range(500)]
    vocab = {"<|begin_of_text|>": 0, "<|end_of_text|>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (root / "tests/assets/tokenizer").mkdir(parents=True)
    tok.save(str(root / "tests/assets/tokenizer/tokenizer.json"))
    (root / "tests/assets/tokenizer/tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}))
    (root / "tests/assets/c4_test").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(0, 500, (300,), generator=g).tolist()) for _ in range(64)]
    (root / "tests/assets/c4_test/data.json").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))


TORCHTITAN_ARGS = ["--module", "qwen3", "--config", "qwen3_moe_debug", "--training.steps", "2",
                   "--training.seq-len", "64", "--training.local-batch-size", "1",
                   "--parallelism.expert-parallel-degree", "4", "--parallelism.spmd-backend", "full_dtensor",
                   "--checkpoint.no-enable", "--training.disable-cuda-graphs"]


@pytest.mark.slow
def test_torchtitan_moe_expert_parallel_on_4_ranks(tmp_path, monkeypatch):
    """``phantora run --nproc-per-node 4 -m torchtitan.train`` with qwen3_moe_debug, EP 4: its
    AllToAllTokenDispatcher's all-to-alls carry the policy's split sizes."""
    if importlib.util.find_spec("torchtitan") is None or importlib.util.find_spec("triton") is None:
        pytest.skip("torchtitan 0.3.0 and triton (it imports triton at import time) are not in the dev extra "
                    "(heavy: triton, datasets, wandb, tensorboard); pip install torchtitan==0.3.0 triton "
                    "torch==2.13.0 to run this")
    _torchtitan_assets(tmp_path)
    monkeypatch.chdir(tmp_path)
    gpu = get_gpu("h200")
    tables = {}
    for policy in ("balanced", "skewed:1.2"):
        o = execute(RunJob(script="torchtitan.train", argv=TORCHTITAN_ARGS, module=True, nnodes=1,
                           nproc_per_node=WORLD, gpu=gpu, compute_model=build_compute_model("roofline", gpu),
                           network=FlowNetwork.build(1, WORLD, NetworkConfig()),
                           host_time="zero", values=ValuePolicy.parse(policy)))
        assert len(o.iteration_ms()) == 2
        write_tables(tmp_path / policy.replace(":", "_"), o.results, o.collectives)
        tables[policy] = pd.read_parquet(tmp_path / policy.replace(":", "_") / "collectives.parquet")
    tokens = 1 * 64 * 8  # batch x seq x top-k per rank; 256-dim bf16 rows
    for policy, coll in tables.items():
        a2a = coll[(coll.kind == "all_to_all") & (coll.dtype == "bfloat16")]
        forward = a2a.call_site.str.contains("token_dispatcher.py")  # backward's have no user frame
        assert len(a2a) and forward.iloc[0] and forward.sum() >= len(a2a) // 2
        sent = [sum(row) for row in a2a.splits.iloc[0]]
        assert sent == [tokens * 256 * 2] * WORLD, "every rank dispatches all its routed tokens"
        first = [list(r) for r in a2a.splits.iloc[0]]
        if policy == "balanced":
            assert first == [[tokens // WORLD * 512] * WORLD] * WORLD
        else:
            assert first[0][0] > 2 * first[0][-1], "skewed: most tokens go to rank 0's experts"
