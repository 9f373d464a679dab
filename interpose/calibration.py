"""Measure the shim's own host cost per call, so ``host_time="measured"`` does not charge it to the
script (:mod:`interpose.clock`'s ``per_call_us`` and ``per_entry_us``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interpose.clock import cpu_time

if TYPE_CHECKING:
    from interpose.dispatch import SimDispatchMode

_PRIM_DEVICE = torch.ops.prim.device.default


def dispatch_round_trip_us(mode: SimDispatchMode, n: int = 300) -> float:
    """Measure one dispatch round trip (C++ -> the mode -> back), in microseconds.

    That cost is paid outside ``clock.enter``/``leave`` for every fake op, so
    measured host time would otherwise charge it to the script.
    """
    with mode.fake:
        t = torch.empty(1, device="cuda")
    best = float("inf")
    with mode:
        for _ in range(5):
            t0 = cpu_time()
            for _ in range(n):
                _PRIM_DEVICE(t)
            best = min(best, (cpu_time() - t0) / n * 1e6)
    mode.rt.clock.pending_calls = 0
    return best


def entry_us(mode: SimDispatchMode, n: int = 200, reps: int = 5) -> float:
    """Host microseconds a tensor call spends outside the shim before and after it
    (beyond :func:`dispatch_round_trip_us`), measured on a cached view op: the
    loop has no script work, so whatever measured mode would bank is leakage.
    The minimum over ``reps`` keeps noise from other processes out (it
    under-subtracts rather than eats real script time). Call with the mode active."""
    clock = mode.rt.clock
    with mode.fake:
        x = torch.empty(64, 64, device="cuda")
    x.view(-1)  # learn the fastpath entry
    saved_host, saved_entry = clock.host_us, clock.per_entry_us
    clock.per_entry_us = 0.0
    best = float("inf")
    for _ in range(reps):
        clock.enter()
        clock.leave()
        h0 = clock.host_us
        for _ in range(n):
            x.view(-1)
        clock.enter()
        clock.leave()
        best = min(best, (clock.host_us - h0) / n)
    clock.host_us, clock.per_entry_us = saved_host, saved_entry
    return max(best, 0.0)
