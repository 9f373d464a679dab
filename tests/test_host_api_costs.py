"""``torch.cuda`` calls cost the simulated host what they cost on the GPU's host (profiles/host_api.py)."""

from __future__ import annotations

import time

import pytest
import torch

import profiles
from interpose import RankConfig, interposed
from profiles.host_api import host_api_costs


def _cfg(gpu: str) -> RankConfig:
    g = profiles.get_gpu(gpu)
    return RankConfig(gpu=g, compute_model=profiles.build_compute_model("roofline", g), host_time="zero")


def _host_us(fn, n: int = 100) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) * 1e6 / n


COSTS = host_api_costs("h200").us


@pytest.mark.parametrize(
    "api", ["current_stream", "memory_allocated", "synchronize", "Event.record", "Stream.wait_stream"]
)
def test_each_call_costs_the_measured_host_time(api):
    with interposed(_cfg("h200")) as rt:
        s, e = torch.cuda.Stream(), torch.cuda.Event()
        calls = {
            "current_stream": torch.cuda.current_stream,
            "memory_allocated": torch.cuda.memory_allocated,
            "synchronize": torch.cuda.synchronize,
            "Event.record": e.record,
            "Stream.wait_stream": lambda: s.wait_stream(torch.cuda.current_stream()),
        }
        per_call = _host_us(calls[api])
        assert rt.host_model["host_api"].startswith("measured")
    # one charge per outermost call: wait_stream's own event record and its current_stream are part of it
    extra = COSTS["current_stream"] if api == "Stream.wait_stream" else 0.0
    assert per_call == pytest.approx(COSTS[api] + extra, rel=0.02)


def test_a_gpu_host_without_measurements_charges_nothing():
    with interposed(_cfg("h100")) as rt:
        assert _host_us(torch.cuda.current_stream) == pytest.approx(0.0, abs=1e-6)
        assert rt.host_model["host_api"].startswith("none")


def test_calls_from_other_threads_are_not_the_scripts_time():
    import threading

    with interposed(_cfg("h200")) as rt:
        before = rt.clock.host_us
        t = threading.Thread(target=lambda: [torch.cuda.current_stream() for _ in range(100)])
        t.start()
        t.join()
        assert rt.clock.host_us == before
