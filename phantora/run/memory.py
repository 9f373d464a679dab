"""Host memory of multi-rank runs: a check before the fork, a bound on ranks running at once, and
what to say when the kernel's OOM killer takes a rank.

Why a bound: a rank's memory is small once it runs (≈ 30–40 MiB private after the fork from the
warm parent, `docs/performance.md`), but many scripts build the model on the CPU first and move it
to the GPU afterwards, so each rank holds the model's real fp32 parameters for a moment
(≈ 480 MiB for the DDP example's default GPT). Forked at once, 128 ranks on a 2-core machine all
reach that point together (none of them blocks before its first collective) and the transient
peaks add up: 128 × 480 MiB is 60 GiB. Ranks are CPU-bound, so running more of them at a time
than there are cores buys no speed; :class:`RankGate` lets at most ``slots`` ranks run and makes
a rank give its slot up while it waits on the coordinator (a collective, a barrier), so the
transients follow one another. Simulated figures do not depend on the order in which ranks run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.protocol import Channel, FailureKind
from phantora.coordinator import CoordinatorError

RANK_FLOOR_MIB = 40
"""Private memory of one rank once it runs a script, measured (2026-12-02, this 2-core machine) at
the DDP example's first collective: 29–40 MiB, growing slowly with the op log. What the pre-flight
check assumes every rank needs at least; the script's own CPU data comes on top."""
STALL_S = 60.0
"""A rank that waits this long for a slot while no slot has been given back runs anyway: the
holders are blocked on something other than the coordinator (a file, a socket), and waiting
longer could deadlock the run."""


def _now() -> float:
    # not time.monotonic: the shim replaces it in the ranks with simulated time
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def meminfo_mib() -> dict[str, int]:
    """``/proc/meminfo`` in MiB (empty where it cannot be read)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) // 1024
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class MemoryPreflightError(CoordinatorError):
    """The machine cannot hold the ranks, known before anything is forked."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureKind.LAUNCHER, message)


def preflight(processes: int, floor_mib: int = RANK_FLOOR_MIB) -> str | None:
    """Before the fork: raise :class:`MemoryPreflightError` if ``processes`` rank processes cannot fit
    in the memory available now even at their floor, and return a warning line (or ``None``) when they
    would take more than half of it."""
    avail = meminfo_mib().get("MemAvailable")
    if avail is None or processes <= 1:
        return None
    need = processes * floor_mib
    if need > avail:
        raise MemoryPreflightError(
            f"phantora: {processes} rank processes need at least {processes} × {floor_mib} MiB = "
            f"{need / 1024:.1f} GiB of host memory, and {avail / 1024:.1f} GiB is available: use fewer ranks, "
            "or --symmetric (one rank process stands for all)"
        )
    if need > avail // 2:
        return (
            f"phantora: warning: {processes} rank processes need at least {need / 1024:.1f} GiB of the "
            f"{avail / 1024:.1f} GiB of host memory available, more if the script holds data on the CPU"
        )
    return None


class RankGate:
    """At most ``slots`` ranks run at a time; a rank waiting on the coordinator gives its slot up
    (module docstring). Made in the parent before the fork (its semaphore is shared by the ranks)."""

    def __init__(self, slots: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.slots = slots
        self._sem = ctx.Semaphore(slots)
        self._last_release = ctx.Value("d", _now(), lock=False)
        self.held = False

    @classmethod
    def for_ranks(cls, processes: int) -> RankGate | None:
        """The gate for ``processes`` rank processes: ``None`` (no gate) when there are no more ranks than
        slots. ``PHANTORA_RUNNING_RANKS`` overrides the number of slots (0: no gate)."""
        env = os.environ.get("PHANTORA_RUNNING_RANKS")
        slots = int(env) if env else max(2, usable_cores())
        return cls(slots) if 0 < slots < processes else None

    def acquire(self) -> None:
        while not self._sem.acquire(timeout=1.0):
            if _now() - self._last_release.value > STALL_S:
                return  # the holders look stuck outside the coordinator: run without a slot
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._last_release.value = _now()
            self._sem.release()

    @contextlib.contextmanager
    def running(self, ch: Channel) -> Iterator[Channel]:
        """Hold a slot while the rank runs; the yielded channel gives it up while ``recv`` waits."""
        self.acquire()
        try:
            yield _GatedChannel(ch.conn, self)
        finally:
            self.release()


class _GatedChannel(Channel):  # type: ignore[type-arg]
    """A rank's channel whose blocking ``recv`` hands the rank's slot to another rank meanwhile."""

    def __init__(self, conn: Any, gate: RankGate) -> None:
        super().__init__(conn)
        self._gate = gate

    def recv(self) -> Any:
        gate = self._gate
        if not gate.held or self.poll(0.0):
            return self.conn.recv()
        gate.release()
        try:
            return self.conn.recv()
        finally:
            gate.acquire()


@contextlib.contextmanager
def gated(gate: RankGate | None, ch: Channel) -> Iterator[Channel]:
    """In a rank: ``ch`` under ``gate`` (or as it is, without one)."""
    if gate is None:
        yield ch
        return
    with gate.running(ch) as gch:
        yield gch


def children_anon_mib() -> list[int]:
    """Anonymous resident memory (``RssAnon``, MiB) of each live child of this process."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
    out = []
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    out.append(int(line.split()[1]) // 1024)
    return out


def kill_hint(code: int | None) -> str:
    """What to add to the report of a rank that died of signal ``-code``: for SIGKILL, which nobody in
    the run sends while the ranks run, the likely sender (the kernel's OOM killer, whose log in dmesg
    an unprivileged process usually cannot read) and the memory the ranks held."""
    if code != -signal.SIGKILL:
        return ""
    anon = children_anon_mib()
    info = meminfo_mib()
    held = (
        f"{len(anon)} ranks still running × {max(anon)} MiB anonymous memory at most"
        if anon
        else "no rank left"
    )
    total = info.get("MemTotal")
    return (
        f" (killed by SIGKILL, likely the kernel OOM killer: {held}"
        + (f", {info.get('MemAvailable', 0)} of {total} MiB available" if total else "")
        + ")"
    )
