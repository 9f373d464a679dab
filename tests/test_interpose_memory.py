"""Memory accounting equals a hand-computed figure; the scenario's limit raises a simulated OOM."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import profiles
from interpose import RankConfig, interposed
from interpose.workspace import CUBLAS_WORKSPACE_BYTES_SM90

MiB = 1 << 20


def _cfg(**kw) -> RankConfig:
    gpu = profiles.get_gpu("h100")
    return RankConfig(
        gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero", **kw
    )


def test_params_grads_adam_states_and_activations_match_hand_count():
    # MLP 1024 -> ReLU -> 1024, fp32, batch 64. Every size is a multiple of 512 B, so
    # rounded block sizes equal tensor sizes; 4 MiB weights come from a 20 MiB segment
    # and are split off it (tail > 1 MiB), so they count exactly 4 MiB.
    W, B = 1024 * 1024 * 4, 1024 * 4
    P = 2 * (W + B)  # parameters of both layers
    act = 64 * 1024 * 4  # one [64, 1024] fp32 activation
    scalar = 512  # 0-dim loss, rounded up to the 512 B minimum block
    ws = CUBLAS_WORKSPACE_BYTES_SM90  # cuBLAS workspace: first forward matmul, and again in backward
    with interposed(_cfg()):
        net = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024)).cuda()
        assert torch.cuda.memory_allocated() == P
        x = torch.randn(64, 1024, device="cuda")
        loss = net(x).sum()
        # live: params, input x, ReLU output (saved for both backward ops), loss.
        # The first Linear's output and the final output are not saved, so they are freed.
        assert torch.cuda.memory_allocated() == P + x.nbytes + act + scalar + ws
        opt = torch.optim.Adam(net.parameters())
        loss.backward()
        # graph freed; gradients (same sizes as params) appear; backward's cuBLAS handle
        # (autograd's device thread on a GPU) has its own workspace
        assert torch.cuda.memory_allocated() == 2 * P + act + scalar + 2 * ws
        opt.step()
        # Adam adds exp_avg and exp_avg_sq per parameter (step counters live on the CPU)
        assert torch.cuda.memory_allocated() == 4 * P + act + scalar + 2 * ws
        assert torch.cuda.max_memory_allocated() >= 4 * P + act + scalar + 2 * ws
        assert torch.cuda.memory_reserved() >= torch.cuda.max_memory_allocated()


def test_views_share_storage_and_free_with_last_reference():
    with interposed(_cfg()):
        base = torch.cuda.memory_allocated()
        x = torch.empty(3 * MiB, device="cuda", dtype=torch.uint8)
        v = x.view(3, MiB)[1:]
        del x
        assert torch.cuda.memory_allocated() == base + 3 * MiB
        del v
        assert torch.cuda.memory_allocated() == base


def test_oom_raised_at_the_scenario_limit():
    with interposed(_cfg(memory_limit_bytes=100 * MiB)) as rt:
        a = torch.empty(60 * MiB, dtype=torch.uint8, device="cuda")
        with pytest.raises(
            torch.cuda.OutOfMemoryError, match=r"^CUDA out of memory\. Tried to allocate 0\.05 GiB"
        ):
            torch.empty(50 * MiB, dtype=torch.uint8, device="cuda")
        assert rt.allocator.stats().num_ooms == 1
        del a
        b = torch.empty(50 * MiB, dtype=torch.uint8, device="cuda")  # fits once a is gone
        assert b.is_cuda


def test_oom_default_limit_is_gpu_memory():
    with interposed(_cfg()):
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(90 << 30, dtype=torch.uint8, device="cuda")
        torch.empty(70 << 30, dtype=torch.uint8, device="cuda")
