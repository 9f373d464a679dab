"""Adapter: a netsim :class:`~netsim.backend.NetworkBackend` as the coordinator's :class:`NetworkTimer`.

netsim works in integer nanoseconds with per-rank start times; the coordinator in float
microseconds with one start per collective (the latest member's arrival). A collective
completes, for the coordinator, when its last member's part ends. c10d kinds netsim does
not model are mapped onto the nearest one it does (object collectives become all-gathers and broadcasts).
"""

from __future__ import annotations

from typing import Any

from interpose.protocol import CollectiveCall
from phantora.coordinator.network import Completion, NetworkTimer

_KIND_MAP = {
    "send": "send_recv",
    "recv": "send_recv",
    "all_gather_object": "all_gather",
    "gather_object": "all_gather",
    "broadcast_object": "broadcast",
    "scatter_object": "broadcast",
}


def build(scenario: Any, gpus_per_host: int, hosts: int | None = None) -> NetworkTimer | None:
    """A netsim-backed timer for ``scenario``'s network, or ``None`` when netsim cannot build one."""
    try:
        from netsim.coordinator_api import build_network
    except ImportError:
        return None
    try:
        backend = build_network(scenario, hosts=hosts or int(getattr(scenario, "hosts", 1)),
                                gpus_per_host=gpus_per_host)
    except ValueError:  # e.g. network.backend: ns3, which the coordinator cannot drive yet
        return None
    return NetsimTimer(backend)


class NetsimTimer(NetworkTimer):
    """Drives a :class:`netsim.backend.NetworkBackend`."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._keys: dict[int, str] = {}

    def _kind(self, call: CollectiveCall) -> str:
        kind = _KIND_MAP.get(call.kind, call.kind)
        if not self.backend.supports(kind):
            kind = "all_reduce"
        return kind

    def submit(self, call: CollectiveCall, start_us: float) -> None:
        start_ns = max(round(start_us * 1e3), int(self.backend.now_ns))
        nbytes = max(call.nbytes, 4) if call.kind == "barrier" else call.nbytes
        h = self.backend.submit_collective(self._kind(call), list(call.ranks), nbytes, start_ns, tag=call.key)
        self._keys[h] = call.key

    def next_event_us(self) -> float | None:
        t = self.backend.next_event_ns()
        return None if t is None else t / 1e3

    def pop_until(self, t_us: float) -> list[Completion]:
        out = []
        for h in self.backend.run_until(round(t_us * 1e3)):
            key = self._keys.pop(h, None)
            if key is None:
                continue
            ends = self.backend.result(h)
            out.append(Completion(key, max(ends.values()) / 1e3, self.backend.transport_name))
        return sorted(out, key=lambda c: (c.end_us, c.key))
