"""The virtual clock is monotonic, sleeps in simulated time and orders sync points correctly."""

from __future__ import annotations

import time

import pytest
import torch

import profiles
from interpose import RankConfig, interposed
from interpose.clock import VirtualClock


def _cfg(host_time: str = "zero") -> RankConfig:
    gpu = profiles.get_gpu("h100")
    return RankConfig(
        gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time=host_time
    )


def test_measured_clock_excludes_shim_time():
    c = VirtualClock(measured=True)
    c.leave_mark()
    c.enter()
    inside = time.perf_counter()
    while time.perf_counter() - inside < 0.01:  # 10 ms "inside the shim"
        pass
    c.leave()
    assert c.host_us < 5_000  # the shim's own 10 ms did not count
    c.enter()
    c.leave()
    assert c.host_us >= 0


def test_time_functions_are_simulated_and_monotonic():
    real_before = time.perf_counter()
    with interposed(_cfg()):
        t0, m0, n0 = time.perf_counter(), time.monotonic(), time.perf_counter_ns()
        x = torch.randn(4096, 4096, device="cuda")
        stamps = []
        for _ in range(5):
            x = x @ x
            stamps.append(time.perf_counter())
        assert stamps == sorted(stamps)
        assert time.monotonic() >= m0 and time.perf_counter_ns() >= n0
        before_sleep = time.perf_counter()
        time.sleep(2.0)  # simulated: returns at once
        assert time.perf_counter() - before_sleep == pytest.approx(2.0)
        assert abs(time.time() - (time.time() - 0)) < 1.0
        assert t0 < 1.0  # simulated time starts at 0
    assert time.perf_counter() - real_before < 60  # real clock restored


def test_sync_blocks_host_until_gpu_work_ends():
    with interposed(_cfg()) as rt:
        x = torch.randn(8192, 8192, device="cuda")
        t0 = time.perf_counter()
        for _ in range(4):
            x = x @ x  # 4 x ~1.6 ms of GPU work; issue costs only launch overheads
        issued = time.perf_counter()
        gpu_end = rt.stream_ready_us(rt.current_stream)
        assert (issued - t0) * 1e6 < 100  # async: the host did not wait
        torch.cuda.synchronize()
        synced = time.perf_counter()
        assert synced * 1e6 == pytest.approx(gpu_end)
        assert synced - t0 > 4e-3


def test_event_and_item_sync_points_order():
    with interposed(_cfg()) as rt:
        x = torch.randn(4096, 4096, device="cuda")
        e = torch.cuda.Event(enable_timing=True)
        y = x @ x
        e.record()
        z = y @ y
        e.synchronize()
        after_event = time.perf_counter() * 1e6
        assert after_event == pytest.approx(rt.event_time_us(e._mark))
        assert after_event < rt.stream_ready_us(rt.current_stream)  # z is still running
        z.sum().item()
        assert time.perf_counter() * 1e6 >= rt.stream_ready_us(rt.current_stream) - 1e-6


def test_measured_mode_counts_script_cpu_time():
    with interposed(_cfg("measured")):
        t0 = time.perf_counter()
        end = time.thread_time() + 0.02
        while time.thread_time() < end:  # 20 ms of real CPU work in the "script"
            pass
        assert time.perf_counter() - t0 >= 0.015
