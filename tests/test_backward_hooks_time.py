"""``measured`` host time counts the Python that backward runs (hooks, custom Functions, callbacks) as
the script's time, as a GPU host pays it, while the engine's own work on fake tensors stays out."""

from __future__ import annotations

import time

import pytest
import torch

import profiles
from interpose import RankConfig, interposed

BURN_S = 0.03


def _cfg() -> RankConfig:
    gpu = profiles.get_gpu("h100")
    return RankConfig(
        gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="measured"
    )


def _burn(*_args):
    end = time.thread_time() + BURN_S
    while time.thread_time() < end:
        pass


class _Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        _burn()
        return g * 2


def _backward_us(kind: str) -> float:
    """Simulated host µs the backward call of a small graph takes with one ``kind`` callback."""
    x = torch.randn(256, 256, device="cuda", requires_grad=True)
    lin = torch.nn.Linear(256, 256, device="cuda")
    if kind == "module_hook":
        lin.register_full_backward_hook(lambda *a: _burn())
    if kind == "post_accumulate":
        x.register_post_accumulate_grad_hook(_burn)
    y = _Twice.apply(x) if kind == "function" else x * 2
    if kind == "tensor_hook":
        y.register_hook(_burn)
    if kind == "callback":
        y.register_hook(lambda g: torch.autograd.Variable._execution_engine.queue_callback(_burn))
    if kind == "checkpoint":
        from torch.utils.checkpoint import checkpoint

        out = checkpoint(lambda t: (_burn(), lin(t))[1], y, use_reentrant=False).sum()
    else:
        out = lin(y).sum()
    t0 = time.perf_counter()
    out.backward()
    return (time.perf_counter() - t0) * 1e6


@pytest.mark.parametrize(
    "kind", ["function", "tensor_hook", "post_accumulate", "module_hook", "callback", "checkpoint"]
)
def test_python_run_in_backward_is_script_time(kind):
    with interposed(_cfg()):
        _backward_us("none")  # first-call costs out of the way
        plain = _backward_us("none")
        hooked = _backward_us(kind)
    assert plain < BURN_S * 1e6 / 3  # the engine's own time is not the script's
    assert hooked - plain > BURN_S * 1e6 * 0.7
