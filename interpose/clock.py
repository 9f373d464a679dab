"""Virtual host clock and the ``time`` module patches that expose it.

The host clock advances by (a) the script's own CPU time (main thread,
``time.thread_time``) between shim calls, scaled to the target host's speed
(``host_time="measured"``; the shim's own time and a calibrated per-call cost of
reaching the shim are excluded; :mod:`interpose.host_model`) or nothing
(``"zero"``), (b) each GPU op's launch overhead, and (c) waits at sync points.
``time.time/perf_counter/monotonic`` (and ``_ns``) return it; ``time.sleep`` on
the main thread advances it (sleeping for real only for polls: ``POLL_SLEEP_S``).
Other threads (tqdm monitors, loader threads) keep real sleeps so they do not spin.
"""

from __future__ import annotations

import threading
import time as _time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

real_time = _time.time
real_sleep = _time.sleep
cpu_time = _time.thread_time
"""The main thread's CPU time: what ``measured`` host time counts. CPU time, not wall
time, so other processes on a busy machine (or being descheduled) do not inflate
the script's host time; a script blocked on I/O is not charged either."""

POLL_SLEEP_S = 0.1
"""Main-thread sleeps up to this long also sleep for real (simulated time still advances by exactly
the slept amount): they are the polls of a wait on another process, e.g. filelock's 50 ms loop while
another rank builds the shared Hugging Face datasets cache (TorchTitan's iteration 0). Returning at
once, the loop spun, each turn adding 50 ms without the awaited work progressing: 0.3 s of real
waiting read 400 simulated s. Longer sleeps stay simulated only."""

PROBE_EVERY_S = 0.05
"""Script CPU seconds between load probes (each costs ~0.3 ms of shim time, not counted)."""

_PATCHED = ("time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "sleep")


class VirtualClock:
    """Simulated host time in microseconds, plus the bookkeeping for measured mode."""

    __slots__ = (
        "_depth", "_mark", "_probe_due", "epoch_s", "host_us", "measured", "pending_calls", "per_call_us",
        "per_entry_us", "probe", "probe_ref_us", "probes", "scale", "slowdown",
    )  # fmt: skip

    def __init__(self, measured: bool, start_us: float = 0.0) -> None:
        self.measured = measured
        self.host_us = start_us
        self.epoch_s = real_time()
        """Wall-clock time that simulated time 0 maps to, for ``time.time``."""
        self._mark = cpu_time()
        self._depth = 0
        self.per_call_us = 0.0
        """Host cost of one C++ -> Python dispatch round trip that happens outside
        ``enter``/``leave`` (calibrated at install); not the script's time."""
        self.pending_calls = 0
        """Dispatch round trips since the last ``enter``."""
        self.per_entry_us = 0.0
        """Host cost, outside ``enter``/``leave``, of reaching the shim from a tensor call
        (C++ dispatcher, autograd and FakeTensor wrapping, Python<->C++ argument
        conversion) beyond ``per_call_us``; calibrated at install, not the script's time."""
        self.scale = 1.0
        """Target-host time per unit of the script's CPU time here (:mod:`interpose.host_model`)."""
        self.probe: Callable[[], float] | None = None
        """``() -> µs``: :func:`profiles.hostbench.python_probe_us`, re-run every ``PROBE_EVERY_S`` of
        script CPU time; ``None``: no correction for this machine's load."""
        self.probe_ref_us = 0.0
        self.slowdown = 1.0
        """How much slower this machine runs now than when its benchmark ran (smoothed probe ratio)."""
        self.probes = 0
        self._probe_due = 0.0

    def enter(self) -> None:
        """Entering the shim: bank the script's CPU time since the last exit."""
        if self._depth == 0 and self.measured:
            now = cpu_time()
            delta = (now - self._mark) * 1e6 - (self.pending_calls + 1) * self.per_call_us - self.per_entry_us
            self.pending_calls = 0
            self._bank(delta)
            if self.probe is not None and now >= self._probe_due:
                self._reprobe(now, self.probe)
        self._depth += 1

    def _reprobe(self, now: float, probe: Callable[[], float]) -> None:
        ratio = max(0.5, min(4.0, probe() / self.probe_ref_us))
        self.slowdown = ratio if self.probes == 0 else 0.8 * self.slowdown + 0.2 * ratio
        self.probes += 1
        self._probe_due = now + PROBE_EVERY_S

    def enter_callback(self) -> None:
        """Entering the shim from a callback the interpreter runs (a dying storage's finalizer), not
        from a tensor call: bank the script's CPU time so far, with no call-path cost to take off."""
        if self._depth == 0 and self.measured:
            now = cpu_time()
            self._bank((now - self._mark) * 1e6)
        self._depth += 1

    @property
    def depth(self) -> int:
        """Shim entries open now (0: the script is running)."""
        return self._depth

    def script_begin(self) -> int:
        """A Python callback of the autograd engine starts inside the shim's backward
        (:mod:`interpose.backward_hooks`): count the script's CPU time again until
        :meth:`script_end`. Returns the depth to restore."""
        depth = self._depth
        if depth and self.measured:
            self._depth = 0
            self._mark = cpu_time()
        return depth

    def script_end(self, depth: int) -> None:
        if depth and self.measured:
            self._bank((cpu_time() - self._mark) * 1e6)
            self._depth = depth

    def _bank(self, delta_us: float) -> None:
        """Count ``delta_us`` of the script's CPU time here as target-host time."""
        if delta_us > 0:
            self.host_us += delta_us * self.scale / self.slowdown

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self.measured:
            self._mark = cpu_time()

    def leave_mark(self) -> None:
        """Start counting the script's CPU time from now."""
        self._mark = cpu_time()

    def now_us(self) -> float:
        self.enter()
        t = self.host_us
        self.leave()
        return t

    def advance(self, dur_us: float) -> None:
        self.host_us += dur_us

    def wait_until(self, t_us: float) -> None:
        if t_us > self.host_us:
            self.host_us = t_us


class TimePatch:
    """Replaces functions of the ``time`` module with virtual-clock versions; undoable."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._saved: dict[str, object] = {}
        self._main = threading.main_thread().ident

    def install(self) -> None:
        clock = self.clock
        main = self._main

        get_ident = threading.get_ident

        def now_us() -> float:
            # other threads read without touching the main thread's accounting
            return clock.now_us() if get_ident() == main else clock.host_us

        def perf_counter() -> float:
            return now_us() * 1e-6

        def perf_counter_ns() -> int:
            return int(now_us() * 1e3)

        def time_() -> float:
            return clock.epoch_s + now_us() * 1e-6

        def time_ns() -> int:
            return int((clock.epoch_s * 1e6 + now_us()) * 1e3)

        def sleep(seconds: float) -> None:
            if get_ident() != main:
                real_sleep(seconds)
                return
            if seconds < 0:
                raise ValueError("sleep length must be non-negative")
            clock.enter()
            if seconds <= POLL_SLEEP_S:
                real_sleep(seconds)
            clock.advance(seconds * 1e6)
            clock.leave()

        repl = {
            "time": time_,
            "time_ns": time_ns,
            "perf_counter": perf_counter,
            "perf_counter_ns": perf_counter_ns,
            "monotonic": perf_counter,
            "monotonic_ns": perf_counter_ns,
            "sleep": sleep,
        }
        for name in _PATCHED:
            self._saved[name] = getattr(_time, name)
            setattr(_time, name, repl[name])

    def uninstall(self) -> None:
        for name, fn in self._saved.items():
            setattr(_time, name, fn)
        self._saved.clear()
