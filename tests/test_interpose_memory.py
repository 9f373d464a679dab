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


def _backward_peak(tied: bool) -> tuple[int, int]:
    """Extra peak over backward, and what is live after it, for ``w`` used twice (``tied``) or two
    separate weights used once each."""
    with interposed(_cfg()):
        w = torch.randn(1024, 1024, device="cuda", requires_grad=True)
        w2 = w if tied else torch.randn(1024, 1024, device="cuda", requires_grad=True)
        x = torch.randn(1024, 1024, device="cuda")
        ((x @ w).sum() + (w2 @ x).sum()).backward()  # first backward: the cuBLAS workspaces stay
        w.grad = w2.grad = None
        loss = (x @ w).sum() + (w2 @ x).sum()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        loss.backward()
        return torch.cuda.max_memory_allocated() - base, torch.cuda.memory_allocated() - base


def test_tied_weight_gradients_accumulate_in_place_as_the_autograd_engine_does_on_a_gpu():
    # w (1024x1024 fp32, 4 MiB) used twice: its two gradients meet in the engine's input buffer,
    # which on a GPU adds the second into the first in place, so the backward peak is that of two
    # separate weights (two gradient buffers live), not 4 MiB more (a third buffer for an
    # out-of-place sum, what the engine does when a dispatch mode is on)
    W = 1024 * 1024 * 4
    tied_peak, tied_after = _backward_peak(True)
    separate_peak, separate_after = _backward_peak(False)
    assert separate_after - tied_after == W  # one gradient instead of two
    assert tied_peak == separate_peak


def test_memory_history_snapshot_has_the_allocations_frames_and_segments():
    with interposed(_cfg()):
        torch.cuda.memory._record_memory_history(max_entries=100)
        a = torch.empty(3 * MiB, device="cuda", dtype=torch.uint8)  # this line allocates
        b = torch.empty(512, device="cuda", dtype=torch.uint8)
        del b
        snap = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        assert torch.cuda.memory._snapshot()["device_traces"][0] == []
        del a
    trace = snap["device_traces"][0]
    allocs = [e for e in trace if e["action"] == "alloc"]
    assert [e["size"] for e in allocs] == [3 * MiB, 512]
    assert [e["action"] for e in trace].count("free_completed") == 1
    assert "segment_alloc" in [e["action"] for e in trace]
    top = allocs[0]["frames"][0]
    assert top["filename"] == __file__ and top["name"].startswith("test_memory_history")
    live = [blk for seg in snap["segments"] for blk in seg["blocks"] if blk["state"] == "active_allocated"]
    assert sum(blk["size"] for blk in live) >= 3 * MiB
    assert any(blk["frames"] and blk["frames"][0]["filename"] == __file__ for blk in live)


def test_empty_tensors_take_no_allocator_block():
    # the CUDA caching allocator returns no block for a zero-byte request (memory_allocated unchanged);
    # the model charged the 512 B minimum block for each
    with interposed(_cfg()):
        base = torch.cuda.memory_allocated()
        empties = [torch.empty(0, device="cuda"), torch.zeros(0, 7, device="cuda"), torch.ones(3, 0, device="cuda")]
        assert torch.cuda.memory_allocated() == base
        one = torch.empty(1, device="cuda")
        assert torch.cuda.memory_allocated() == base + 512
        del empties, one
        assert torch.cuda.memory_allocated() == base
