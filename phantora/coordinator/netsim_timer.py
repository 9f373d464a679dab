"""Adapter: a netsim :class:`~netsim.backend.NetworkBackend` as the coordinator's :class:`NetworkTimer`.

netsim works in integer nanoseconds with per-rank start times; the coordinator in float
microseconds with one start per collective (the latest member's arrival). A collective
completes, for the coordinator, when its last member's part ends. The object collectives are
timed as the tensor collective that moves the same bytes (an all-gather, a broadcast); any other kind
the backend does not model is an error (a ``network`` :class:`CoordinatorError`), never a silent
stand-in. A network netsim cannot build is a :class:`~phantora.scenario.ScenarioError` naming the
file and field, never a silent fallback to another model.
"""

from __future__ import annotations

from typing import Any

from interpose.protocol import CollectiveCall
from phantora.coordinator.core import CoordinatorError
from phantora.coordinator.network import Completion, NetworkTimer

_KIND_MAP = {
    "send": "send_recv",
    "recv": "send_recv",
    "all_gather_object": "all_gather",
    "gather_object": "all_gather",
    "broadcast_object": "broadcast",
    "scatter_object": "broadcast",
}


def build(scenario: Any, gpus_per_host: int, hosts: int | None = None) -> NetworkTimer:
    """A netsim-backed timer for ``scenario``'s network (raises :class:`~phantora.scenario.ScenarioError`
    ``<file>: network.<field>: <why>`` when netsim cannot build it)."""
    from phantora.scenario import network_backend

    return NetsimTimer(network_backend(scenario, hosts or int(getattr(scenario, "hosts", 1)), gpus_per_host))


class NetsimTimer(NetworkTimer):
    """Drives a :class:`netsim.backend.NetworkBackend`."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._keys: dict[int, str] = {}

    def _kind(self, call: CollectiveCall) -> str:
        kind = _KIND_MAP.get(call.kind, call.kind)
        if not self.backend.supports(kind):
            raise CoordinatorError("network", f"{call.kind} at {call.call_site}: the network backend "
                                   f"({type(self.backend).__name__}) cannot time this collective kind")
        return kind

    def submit(self, call: CollectiveCall, start_us: float) -> None:
        start_ns = max(round(start_us * 1e3), int(self.backend.now_ns))
        nbytes = max(call.nbytes, 4) if call.kind == "barrier" else call.nbytes
        extra = {"matrix": [list(row) for row in call.matrix]} if call.matrix else {}  # uneven all-to-all
        h = self.backend.submit_collective(self._kind(call), list(call.ranks), nbytes, start_ns, tag=call.key,
                                           **extra)
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
