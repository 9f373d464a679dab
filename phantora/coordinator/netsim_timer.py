"""Adapter: netsim's incremental flow engine as the coordinator's :class:`NetworkTimer`.

netsim works in integer nanoseconds with per-rank start times; the coordinator in float
microseconds with one start per collective (the latest member's arrival). Completions
are reported at the latest member's end time.
"""

from __future__ import annotations

from interpose.protocol import CollectiveCall
from phantora.coordinator.network import Completion, NetworkTimer


def build(scenario, gpus_per_host: int) -> NetworkTimer | None:
    """A netsim-backed timer for ``scenario``, or ``None`` when netsim's engine is not available."""
    try:
        import netsim.coordinator_api as api  # type: ignore[import-not-found]
    except ImportError:
        return None
    return NetsimTimer(api.build_network(scenario), gpus_per_host)  # pragma: no cover


class NetsimTimer(NetworkTimer):  # pragma: no cover - exercised once netsim lands
    def __init__(self, sim, gpus_per_host: int) -> None:
        self.sim = sim
        self.gpus_per_host = gpus_per_host
        self._handles: dict[object, str] = {}

    def submit(self, call: CollectiveCall, start_us: float) -> None:
        start_ns = round(start_us * 1e3)
        kind = "send_recv" if call.kind in ("send", "recv") else call.kind
        h = self.sim.submit_collective(kind, list(call.ranks), call.nbytes,
                                       {r: start_ns for r in call.ranks}, tag=call.key)
        self._handles[h] = call.key

    def next_event_us(self) -> float | None:
        t = self.sim.next_event_ns()
        return None if t is None else t / 1e3

    def pop_until(self, t_us: float) -> list[Completion]:
        done = self.sim.run_until(round(t_us * 1e3))
        out = []
        for h in done:
            key = self._handles.pop(h)
            ends = self.sim.result(h)
            out.append(Completion(key, max(ends.values()) / 1e3, getattr(self.sim, "transport_name", "")))
        return sorted(out, key=lambda c: (c.end_us, c.key))
