"""The replay path against a small profile recorded on a real H200 (no GPU needed).

tests/data/profile_h200_ddp_small.jsonl holds the 84 signatures of
``examples/ddp/train.py`` (defaults, bf16, world size 1) measured with
``phantora profile`` on the device tool's H200; tests/data/trace_h200_ddp_small.gz
is that run's op sequence. The same script measured 22.59 ms/iter for real
(docs/data/profiles/h200/device_log.txt).
"""

from __future__ import annotations

import copy
import gzip

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from profiles import build_compute_model, get_gpu
from profiles.replay import op_launch_us
from profiles.store import read_profile
from profiles.timeline import replay_trace

REAL_MS_PER_ITER = 22.59


@pytest.fixture
def recorded(repo_root):
    header, entries = read_profile(repo_root / "tests/data/profile_h200_ddp_small.jsonl")
    with gzip.open(repo_root / "tests/data/trace_h200_ddp_small.gz", "rt") as f:
        keys = [k for k in f.read().split("\n") if k]
    return header, entries, keys


def test_header_says_where_it_was_measured(recorded):
    header, entries, keys = recorded
    assert header.gpu == "h200" and header.gpu_name == "NVIDIA H200"
    assert header.torch.startswith("2.11") and header.cuda and header.driver and header.clocks
    assert all(k in entries for k in keys)


def test_trace_replay_is_close_to_the_measured_iteration_time(recorded):
    _, entries, keys = recorded
    launch = op_launch_us(entries)
    policy = {k: copy.copy(e) for k, e in entries.items()}
    for e in policy.values():
        e.launch_us = launch[e.op]
    r = replay_trace(keys, policy, host_gap=False)
    assert r.missing == 0 and r.iterations >= 3
    assert r.iter_us / 1e3 == pytest.approx(REAL_MS_PER_ITER, rel=0.06)


def test_replay_model_hits_recorded_matmul_exactly(recorded, repo_root):
    _, entries, _ = recorded
    key = next(k for k in entries if k.startswith("aten.mm.default|8192x768;768x3072|bfloat16"))
    model = build_compute_model("replay", get_gpu("h200"), profiles=[repo_root / "tests/data/profile_h200_ddp_small.jsonl"])
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(8192, 768, device="cuda", dtype=torch.bfloat16)
        b = torch.empty(768, 3072, device="cuda", dtype=torch.bfloat16)
        if key.split("|")[3] == "cn":
            b = torch.empty(3072, 768, device="cuda", dtype=torch.bfloat16).t()
        t = model.time_op(torch.ops.aten.mm.default, (a, b), {}, a @ b)
    assert t.source == "profile" and t.dur_us == entries[key].dur_us
