"""phantora.run.memory: the pre-flight check, the running-ranks gate and the SIGKILL hint."""

from __future__ import annotations

import multiprocessing as mp
import signal

import pytest

from phantora.run import memory


def test_preflight_refuses_ranks_the_machine_cannot_hold(monkeypatch):
    monkeypatch.setattr(memory, "meminfo_mib", lambda: {"MemAvailable": 1000, "MemTotal": 2000})
    assert memory.preflight(4) is None
    assert "warning" in (memory.preflight(20) or "")
    with pytest.raises(memory.MemoryPreflightError, match=r"100 rank processes need at least 100 × 40 MiB"):
        memory.preflight(100)


def test_gate_only_when_ranks_outnumber_slots(monkeypatch):
    monkeypatch.setenv("PHANTORA_RUNNING_RANKS", "2")
    assert memory.RankGate.for_ranks(2) is None
    gate = memory.RankGate.for_ranks(3)
    assert gate is not None and gate.slots == 2
    monkeypatch.setenv("PHANTORA_RUNNING_RANKS", "0")
    assert memory.RankGate.for_ranks(128) is None


def test_gated_channel_gives_the_slot_up_while_recv_waits():
    from common.protocol import Channel

    gate = memory.RankGate(1)
    a, b = mp.Pipe(duplex=True)
    with memory.gated(gate, Channel(a)) as ch:
        assert gate.held and gate._sem.get_value() == 0
        b.send("ready")
        assert ch.recv() == "ready"  # data waiting: no hand-over
        assert gate.held
        gate.release()  # as recv does before it blocks, then takes the slot back
        assert gate._sem.get_value() == 1
        gate.acquire()
    assert not gate.held and gate._sem.get_value() == 1


def test_sigkill_hint_names_the_oom_killer():
    assert memory.kill_hint(-signal.SIGTERM) == ""
    assert "likely the kernel OOM killer" in memory.kill_hint(-signal.SIGKILL)
