"""The flow-level engine: event-driven, max-min fair, deterministic.

Between events every active flow moves at a constant rate, so the engine jumps from
event to event: the next flow completion (remaining / rate) or the next queued event
(admission of a flow at its start time, a collective's end after its latency tail).
Whenever the set of active flows changes, all rates are recomputed by vectorised
progressive filling (:mod:`netsim.maxmin`) over the incidence arrays, which are kept
concatenated and rebuilt only on change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netsim.backend import NetworkBackend
from netsim.collectives import COLLECTIVES, decompose
from netsim.config import NetworkConfig
from netsim.events import EventQueue, Priority
from netsim.flows import FlowSpec
from netsim.maxmin import max_min_rates
from netsim.topologies import Topology, build_topology
from netsim.transports import Transport, build_transport


@dataclass
class _Job:
    """A submitted collective (or raw flow group) and its progress."""

    tag: Any
    pending: int
    end_ns: dict[int, int] = field(default_factory=dict)
    done: bool = False


@dataclass
class EngineStats:
    events: int = 0
    flows: int = 0
    rate_recomputes: int = 0


class FlowNetwork(NetworkBackend):
    """Flow-level :class:`NetworkBackend` over a topology and a transport."""

    def __init__(self, topology: Topology, transport: Transport, config: NetworkConfig,
                 transport_name: str = "") -> None:
        self.topology = topology
        self.transport = transport
        self.config = config
        self.transport_name = transport_name or getattr(transport, "name", "")
        self.capacity = topology.capacity_gbps.astype(float)  # GB/s == bytes/ns
        self._now = 0
        self._events = EventQueue()
        self._jobs: dict[int, _Job] = {}
        self._conn_cache: dict = {}
        self.stats = EngineStats()
        # active flows
        self._specs: list[FlowSpec] = []
        self._owner: list[int] = []
        self._remaining = np.zeros(0)
        self._rates = np.zeros(0)
        self._dirty = False
        self._admitted: list[tuple[int, FlowSpec]] = []

    # ---- construction -------------------------------------------------------------
    @classmethod
    def build(cls, hosts: int, gpus_per_host: int, config: NetworkConfig | None = None,
              transport: str | None = None) -> FlowNetwork:
        """A network for ``hosts x gpus_per_host`` GPUs; ``transport`` overrides the config's."""
        config = config or NetworkConfig()
        name = transport or config.transport.name
        opts = config.transport.options if name == config.transport.name else {}
        return cls(build_topology(hosts, gpus_per_host, config),
                   build_transport(name, seed=config.seed, options=opts), config, name)

    @property
    def now_ns(self) -> int:
        return self._now

    def supports(self, kind: str) -> bool:
        return kind in COLLECTIVES

    # ---- submission ---------------------------------------------------------------
    def submit_collective(self, kind: str, ranks: Sequence[int], nbytes: int,
                          start_ns: Mapping[int, int] | int, tag: Any = None, *,
                          algorithm: str | None = None, protocol: str | None = None) -> int:
        if isinstance(start_ns, Mapping):
            start = {r: max(int(start_ns[r]), self._now) for r in ranks}
        else:
            start = {r: max(int(start_ns), self._now) for r in ranks}
        specs = decompose(kind, ranks, nbytes, start, topology=self.topology, transport=self.transport,
                          config=self.config, conn_cache=self._conn_cache, algorithm=algorithm,
                          protocol=protocol)
        return self.submit_flows(specs, tag)

    def submit_flows(self, specs: Sequence[FlowSpec], tag: Any = None) -> int:
        """Submit raw flows as one job; its result has an end time per rank of the flows."""
        h = len(self._jobs)
        self._jobs[h] = _Job(tag, len(specs))
        for s in specs:
            self._events.push(max(s.start_ns, self._now), Priority.ADMIT, (h, s))
        if not specs:
            self._events.push(self._now, Priority.COLLECTIVE_DONE, h)
        return h

    # ---- time ---------------------------------------------------------------------
    def _next_flow_done(self) -> int | None:
        if not len(self._remaining):
            return None
        with np.errstate(divide="ignore"):
            dt = np.where(self._rates > 0, self._remaining / self._rates, np.inf).min()
        if not np.isfinite(dt):
            return None
        return self._now + max(0, math.ceil(dt - 1e-6))

    def next_event_ns(self) -> int | None:
        cands = [t for t in (self._next_flow_done(), self._events.peek_time()) if t is not None]
        return min(cands) if cands else None

    def run_until(self, t_ns: int) -> list[int]:
        finished: list[int] = []
        while True:
            t = self.next_event_ns()
            if t is None or t > t_ns:
                break
            self._advance(t)
            self._complete_flows()
            while self._events.peek_time() == t:
                _, prio, payload = self._events.pop()
                self.stats.events += 1
                if prio == Priority.ADMIT:
                    self._admit(*payload)
                else:
                    self._jobs[payload].done = True
                    finished.append(payload)
            self._flush_admitted()
            self._complete_flows()  # zero-byte / link-less flows admitted just now
            if self._dirty:
                self._recompute()
        if t_ns > self._now:
            self._advance(t_ns)
        return finished

    def result(self, handle: int) -> dict[int, int]:
        job = self._jobs[handle]
        if not job.done:
            raise RuntimeError(f"collective {handle} has not finished by t={self._now} ns")
        return dict(job.end_ns)

    def tag(self, handle: int) -> Any:
        return self._jobs[handle].tag

    # ---- internals ----------------------------------------------------------------
    def _advance(self, t: int) -> None:
        if len(self._remaining):
            self._remaining -= self._rates * (t - self._now)
        self._now = t

    def _admit(self, h: int, spec: FlowSpec) -> None:
        self._admitted.append((h, spec))
        self.stats.flows += 1
        self._dirty = True

    def _flush_admitted(self) -> None:
        """Append the flows admitted at this instant in one array operation."""
        if not self._admitted:
            return
        self._owner += [h for h, _ in self._admitted]
        self._specs += [s for _, s in self._admitted]
        self._remaining = np.concatenate([self._remaining, [s.nbytes for _, s in self._admitted]])
        self._rates = np.concatenate([self._rates, np.zeros(len(self._admitted))])
        self._admitted = []

    def _complete_flows(self) -> None:
        if not len(self._remaining):
            return
        empty = np.fromiter((len(s.links) == 0 for s in self._specs), bool, len(self._specs))
        # done: no bytes left (sub-ns remainder counts as done, times are integer ns)
        done = (self._remaining <= np.maximum(self._rates, 1e-9) * 1e-6) | (self._remaining <= 1e-9) | empty
        if not done.any():
            return
        for i in np.flatnonzero(done):
            spec, h = self._specs[i], self._owner[i]
            job = self._jobs[h]
            end = self._now + spec.tail_ns
            for r in spec.ranks:
                job.end_ns[r] = max(job.end_ns.get(r, 0), end)
            job.pending -= 1
            if job.pending == 0:
                self._events.push(max(job.end_ns.values(), default=self._now), Priority.COLLECTIVE_DONE, h)
            self.stats.events += 1
        keep = ~done
        self._specs = [s for s, k in zip(self._specs, keep, strict=True) if k]
        self._owner = [o for o, k in zip(self._owner, keep, strict=True) if k]
        self._remaining = self._remaining[keep]
        self._rates = self._rates[keep]
        self._dirty = True

    def _recompute(self) -> None:
        self._dirty = False
        n = len(self._specs)
        if n == 0:
            return
        lens = np.fromiter((len(s.links) for s in self._specs), np.int64, n)
        entry_flow = np.repeat(np.arange(n), lens)
        entry_link = np.concatenate([s.links for s in self._specs])
        entry_w = np.concatenate([s.weights for s in self._specs])
        cap = np.fromiter((s.max_rate_gbps for s in self._specs), float, n)
        self._rates = max_min_rates(entry_flow, entry_link, entry_w, n, self.capacity, cap)
        self.stats.rate_recomputes += 1


def simulate_collectives(calls: Sequence[Mapping[str, Any]], *, hosts: int, gpus_per_host: int,
                         config: NetworkConfig | None = None, transport: str | None = None
                         ) -> list[dict[int, int]]:
    """Batch helper: run ``calls`` (dicts with ``kind``, ``ranks``, ``nbytes``, ``start_ns``) together,
    contending, and return each call's end time per rank."""
    net = FlowNetwork.build(hosts, gpus_per_host, config, transport)
    handles = [net.submit_collective(c["kind"], c["ranks"], c["nbytes"], c.get("start_ns", 0))
               for c in calls]
    net.run()
    return [net.result(h) for h in handles]
