"""The host-time model: target/local CPU scaling, load correction, steady launch and first-call costs."""

from __future__ import annotations

import json
import time

import pytest
import torch

import profiles
from interpose import RankConfig
from interpose.clock import VirtualClock
from interpose.host_model import NO_TARGET, host_scale
from interpose.runner import interposed
from profiles.replay import ReplayModel, steady_host_costs
from profiles.store import ProfileEntry, ProfileHeader


def _burn(seconds: float) -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass


class _Model:
    host_bench_us = 300.0


def test_scale_comes_from_config_then_profile_and_says_so(monkeypatch):
    monkeypatch.setattr("profiles.hostbench.host_bench_reference", lambda: (100.0, 40.0))
    monkeypatch.delenv("PHANTORA_SCRIPT_TIME_FIT", raising=False)
    s = host_scale(None, _Model())
    assert s.source == "profile" and s.target_bench_us == 300.0
    assert abs(s.factor - 3.0 * s.fit) < 1e-9 and s.probe_ref_us == 40.0
    c = host_scale(150.0, _Model())
    assert c.source == "config" and abs(c.factor - 1.5 * c.fit) < 1e-9
    none = host_scale(None, object())
    assert none.source == NO_TARGET and none.target_bench_us is None


def test_measured_script_time_is_scaled_and_load_corrected():
    clock = VirtualClock(True)
    clock.scale = 2.0
    clock.leave_mark()
    _burn(0.02)
    clock.enter()
    clock.leave()
    scaled = clock.host_us
    assert 2 * 0.02e6 * 0.9 < scaled < 2 * 0.02e6 * 1.5
    # a machine twice as slow as at calibration: the same CPU time counts half
    slow = VirtualClock(True)
    slow.scale, slow.probe, slow.probe_ref_us = 2.0, (lambda: 200.0), 100.0
    slow.enter()  # first probe: slowdown 2
    slow.leave()
    assert slow.slowdown == 2.0 and slow.probes == 1
    before = slow.host_us
    _burn(0.02)
    slow.enter()
    slow.leave()
    assert 0.02e6 * 0.9 < slow.host_us - before < 0.02e6 * 1.5


def _entry(key: str, op: str, launch: float, first: float | None) -> ProfileEntry:
    return ProfileEntry(key=key, op=op, family="elementwise", dtype="float32", dur_us=5.0,
                        launch_us=launch, first_call_us=first)


def test_steady_profiles_give_launch_minus_offset_and_first_call_extra():
    steady = ProfileHeader(gpu="h200", extra={"launch_method": "steady", "launch_offset_us": 2.0})
    old = ProfileHeader(gpu="h200")
    entries = {"a": _entry("a", "aten.add.Tensor", 12.0, 40.0), "b": _entry("b", "aten.add.Tensor", 14.0, 14.0),
               "c": _entry("c", "aten.mul.Tensor", 30.0, None)}
    launch, first, _gaps = steady_host_costs(entries, [steady, old], {"a": 0, "b": 0, "c": 1})
    assert launch == {"aten.add.Tensor": 11.0}  # median of 10 and 12; the old profile's mul is not steady
    assert first == {"aten.add.Tensor": 14.0}  # median of 28 and 0


def test_first_call_cost_is_charged_once_per_signature(tmp_path):
    from torch._subclasses.fake_tensor import FakeTensorMode

    from profiles.compute import signature_of

    with FakeTensorMode():
        x = torch.empty(64, 64, device="cuda")
        key = signature_of(torch.ops.aten.add.Tensor, (x, x), {}).key()
    header = {"format": "phantora-profile", "version": 1, "gpu": "h200",
              "extra": {"launch_method": "steady", "launch_offset_us": 0.0}}
    row = {"key": key, "op": "aten.add.Tensor", "family": "elementwise", "dtype": "float32", "dur_us": 5.0,
           "launch_us": 10.0, "first_call_us": 510.0}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    gpu = profiles.get_gpu("h200")
    model = ReplayModel(gpu, profiles=[path])
    assert model._op_first == {"aten.add.Tensor": 500.0}
    cfg = RankConfig(gpu=gpu, compute_model=model, host_time="zero")
    with interposed(cfg) as rt:
        a = torch.empty(64, 64, device="cuda")
        h0 = rt.clock.host_us
        a + a
        h1 = rt.clock.host_us
        a + a
        h2 = rt.clock.host_us
    assert abs((h1 - h0) - 510.0) < 1e-6  # launch + the new shape's plan
    assert abs((h2 - h1) - 10.0) < 1e-6  # launch only


def test_a_new_shape_costs_extra_only_for_ops_with_per_shape_plans(tmp_path):
    """Elementwise ops pay their first-call extra once per process; ``mm`` pays it for its first shape and
    the measured warm premium for each later unrecorded one (profiles/replay.py ``PER_SHAPE_PLANS``)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from profiles.compute import signature_of
    from profiles.host_api import new_shape_us

    with FakeTensorMode():
        x = torch.empty(64, 64, device="cuda")
        add_key = signature_of(torch.ops.aten.add.Tensor, (x, x), {}).key()
        mm_key = signature_of(torch.ops.aten.mm.default, (x, x), {}).key()
    header = {"format": "phantora-profile", "version": 1, "gpu": "h200",
              "extra": {"launch_method": "steady", "launch_offset_us": 0.0}}
    rows = [{"key": add_key, "op": "aten.add.Tensor", "family": "elementwise", "dtype": "float32", "dur_us": 5.0,
             "launch_us": 10.0, "first_call_us": 510.0},
            {"key": mm_key, "op": "aten.mm.default", "family": "matmul", "dtype": "float32", "dur_us": 5.0,
             "launch_us": 20.0, "first_call_us": 3020.0}]  # fmt: skip
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]))
    gpu = profiles.get_gpu("h200")
    warm = new_shape_us("h200")["aten.mm.default"]
    assert 200 < warm < 300  # measured: 286 us new against 27 us seen
    cfg = RankConfig(gpu=gpu, compute_model=ReplayModel(gpu, profiles=[path]), host_time="zero")

    def cost(fn) -> float:
        h0 = rt.clock.host_us
        fn()
        return rt.clock.host_us - h0

    with interposed(cfg) as rt:
        a, b = torch.empty(64, 64, device="cuda"), torch.empty(96, 64, device="cuda")
        assert cost(lambda: a + a) == pytest.approx(510.0)  # the op's first call
        assert cost(lambda: b + b) == pytest.approx(10.0)  # a new shape: launch only
        assert cost(lambda: a @ a) == pytest.approx(3020.0)  # mm's first (cold) call, as recorded
        assert cost(lambda: b @ a) == pytest.approx(20.0 + warm)  # a new shape: the warm premium
        assert cost(lambda: b @ a) == pytest.approx(20.0)  # seen
