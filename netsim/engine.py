"""The flow-level engine: event-driven, max-min fair, deterministic.

Between events every active flow moves at a constant rate, so the engine jumps from
event to event: the next flow completion (remaining / rate) or the next queued event
(admission of a flow at its start time, a collective's end after its latency tail).
Whenever the set of active flows changes, rates are recomputed by vectorised progressive
filling (:mod:`netsim.maxmin`) over the incidence arrays, which are kept concatenated and
rebuilt only on change; only the flows an event can affect are re-rated (see
:class:`FlowNetwork`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netsim.backend import NETWORK_BACKENDS, NetworkBackend
from netsim.collectives import COLLECTIVES, decompose
from netsim.config import NetworkConfig
from netsim.congestion import CONGESTION
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
    flows_recomputed: int = 0
    """Sum over recomputations of the flows whose rates were recomputed (all active ones when
    ``incremental`` is off): the engine's real work."""


@NETWORK_BACKENDS.register("flow")
class FlowNetwork(NetworkBackend):
    """Flow-level :class:`NetworkBackend` over a topology and a transport.

    ``incremental`` (default): after an event only the flows connected, through shared links
    and transitively, to the links of the flows that finished or started are re-rated. Max-min
    fairness decomposes over connected components, so the rates equal a full recomputation's
    up to float rounding; ``incremental=False`` recomputes every active flow (the reference).

    Warm start when flows only finished (nothing admitted since the last recomputation): let
    ``r`` be the smallest rate among the finished flows. Progressive filling freezes flows in
    increasing order of rate, and a finished flow froze when the first of its links saturated,
    so none of its links saturated below ``r``: the filling of the remaining flows is the same
    as before up to ``r``, and every flow whose rate was below ``r`` keeps it. Only flows at or
    above ``r`` (a 1e-9 relative margin below, for rounding) that are connected to the finished
    flows' links through other such flows are re-rated, on the capacity the kept flows leave.
    In an all-to-all the first to finish are the fastest, so an event re-rates a few flows, not
    the ~40,000 ECMP collisions tie together.
    """

    def __init__(self, topology: Topology, transport: Transport, config: NetworkConfig,
                 transport_name: str = "", *, incremental: bool = True) -> None:
        self.topology = topology
        self.transport = transport
        self.config = config
        self.transport_name = transport_name or getattr(transport, "name", "")
        self.capacity = topology.capacity_gbps.astype(float)  # GB/s == bytes/ns
        self.incremental = incremental
        self._now = 0
        self._events = EventQueue()
        self._jobs: dict[int, _Job] = {}
        self._conn_cache: dict = {}
        self._labels: dict[int, str] = {}
        self.stats = EngineStats()
        # flow slots in admission order; finished ones stay (rate 0, not alive) until compaction
        self._specs: list[FlowSpec] = []
        self._owner: list[int] = []
        self._alive = np.zeros(0, dtype=bool)
        self._remaining = np.zeros(0)
        self._rates = np.zeros(0)
        self._nlinks = np.zeros(0, dtype=np.int64)
        self._caps = np.zeros(0)
        self._n_dead = 0
        # incidence entries (slot, link, weight) of every slot, in slot order
        self._e_flow = np.zeros(0, dtype=np.int64)
        self._e_link = np.zeros(0, dtype=np.int64)
        self._e_w = np.zeros(0)
        self._touched: list[np.ndarray] = []
        self._dirty = False
        self._admitted: list[tuple[int, FlowSpec]] = []
        self._grew = False  # flows with links admitted since the last recomputation
        self._done_min_rate = math.inf  # smallest rate among flows finished since then
        # congestion control (transport option ``congestion``): switch queues absorb overload
        # instead of max-min capping it, and each controlled flow is capped at its DCQCN rate
        model = CONGESTION.get(getattr(transport, "congestion", "none"))
        self._switch = topology.switch_egress()
        self.cc = None if model is None else model(
            self.capacity, self._switch, config.nic.gbit / 8.0, **getattr(transport, "congestion_options", {}))
        self._cap_eff = self.capacity if self.cc is None else np.where(self._switch, np.inf, self.capacity)
        self._tick_pending = False
        self._last_tick = 0

    # ---- construction -------------------------------------------------------------
    @classmethod
    def build(cls, hosts: int, gpus_per_host: int, config: NetworkConfig | None = None,
              transport: str | None = None, *, incremental: bool = True) -> FlowNetwork:
        """A network for ``hosts x gpus_per_host`` GPUs; ``transport`` overrides the config's."""
        config = config or NetworkConfig()
        name = transport or config.transport.name
        opts = config.transport.options if name == config.transport.name else {}
        return cls(build_topology(hosts, gpus_per_host, config),
                   build_transport(name, seed=config.seed, options=opts), config, name,
                   incremental=incremental)

    @property
    def now_ns(self) -> int:
        return self._now

    def supports(self, kind: str) -> bool:
        return kind in COLLECTIVES

    # ---- submission ---------------------------------------------------------------
    def submit_collective(self, kind: str, ranks: Sequence[int], nbytes: int,
                          start_ns: Mapping[int, int] | int, tag: Any = None, *,
                          algorithm: str | None = None, protocol: str | None = None,
                          matrix: Sequence[Sequence[float]] | None = None) -> int:
        if isinstance(start_ns, Mapping):
            start = {r: max(int(start_ns[r]), self._now) for r in ranks}
        else:
            start = {r: max(int(start_ns), self._now) for r in ranks}
        labels: list[str] = []
        specs = decompose(kind, ranks, nbytes, start, topology=self.topology, transport=self.transport,
                          config=self.config, conn_cache=self._conn_cache, algorithm=algorithm,
                          protocol=protocol, matrix=matrix, labels=labels)
        h = self.submit_flows(specs, tag)
        self._labels[h] = labels[0]
        return h

    def choice_of(self, handle: int) -> str:
        """What NCCL ran for a submitted collective: ``algorithm/protocol/channels`` (``p2p/...``: per peer)."""
        return self._labels.get(handle, "")

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
        with np.errstate(divide="ignore", invalid="ignore"):
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
            while self._events.peek_time() == t:  # every event of this instant, one recomputation
                _, prio, payload = self._events.pop()
                self.stats.events += 1
                if prio == Priority.ADMIT:
                    self._admit(*payload)
                elif prio == Priority.CC_TICK:
                    self._cc_tick()
                else:
                    self._jobs[payload].done = True
                    finished.append(payload)
            self._flush_admitted()
            self._complete_flows()  # zero-byte / link-less flows admitted just now
            if self._dirty:
                self._recompute()
            if self.cc is not None and not self._tick_pending and (self._alive & self.cc.on).any():
                self._tick_pending = True
                self._last_tick = self._now
                self._events.push(self._now + self.cc.tick_ns, Priority.CC_TICK, None)
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

    def link_load_gbps(self) -> np.ndarray:
        """Current load per link (GB/s) of the active flows."""
        keep = self._alive[self._e_flow]
        return np.bincount(self._e_link[keep], weights=(self._rates[self._e_flow] * self._e_w)[keep],
                           minlength=len(self.capacity))

    # ---- internals ----------------------------------------------------------------
    def _cc_tick(self) -> None:
        """Advance congestion control to now; the controlled flows' caps change, so re-rate them."""
        assert self.cc is not None
        self._tick_pending = False
        self.cc.step(self._now - self._last_tick, self._rates, self._alive, self._e_flow, self._e_link, self._e_w)
        self._last_tick = self._now
        ctl = (self._alive & self.cc.on)[self._e_flow]
        if ctl.any():
            self._touched.append(np.unique(self._e_link[ctl]))
            self._grew = True  # caps may rise: the warm start (finished flows only) does not apply
            self._dirty = True

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
        new = [s for _, s in self._admitted]
        base = len(self._specs)
        nl = np.array([len(s.links) for s in new], dtype=np.int64)
        self._owner += [h for h, _ in self._admitted]
        self._specs += new
        self._nlinks = np.concatenate([self._nlinks, nl])
        self._caps = np.concatenate([self._caps, [s.max_rate_gbps for s in new]])
        self._remaining = np.concatenate([self._remaining, [s.nbytes for s in new]])
        self._rates = np.concatenate([self._rates, np.zeros(len(new))])
        self._alive = np.concatenate([self._alive, np.ones(len(new), dtype=bool)])
        if self.cc is not None:
            self.cc.admit(np.array([bool(self._switch[s.links].any()) for s in new], dtype=bool))
        if nl.sum():
            links = [np.asarray(s.links, dtype=np.int64) for s in new]
            self._e_flow = np.concatenate([self._e_flow, np.repeat(np.arange(base, base + len(new)), nl)])
            self._e_link = np.concatenate([self._e_link, *links])
            self._e_w = np.concatenate([self._e_w, *[np.asarray(s.weights, dtype=float) for s in new]])
            self._touched += links
            self._grew = True
        self._admitted = []

    def _complete_flows(self) -> None:
        if not len(self._remaining):
            return
        empty = self._nlinks == 0
        # done: no bytes left (sub-ns remainder counts as done, times are integer ns)
        done = self._alive & ((self._remaining <= np.maximum(self._rates, 1e-9) * 1e-6)
                              | (self._remaining <= 1e-9) | empty)
        if not done.any():
            return
        linked = done & ~empty
        if linked.any():
            self._done_min_rate = min(self._done_min_rate, float(self._rates[linked].min()))
        for i in np.flatnonzero(done):  # each flow passes here once
            spec, h = self._specs[i], self._owner[i]
            job = self._jobs[h]
            end = self._now + spec.tail_ns
            if self.cc is not None and self.cc.on[i]:  # the last byte waits in the queues on its path
                end += self.cc.queue_delay_ns(spec.links[self._switch[spec.links]])
            for r in spec.ranks:
                job.end_ns[r] = max(job.end_ns.get(r, 0), end)
            job.pending -= 1
            if job.pending == 0:
                self._events.push(max(job.end_ns.values(), default=self._now), Priority.COLLECTIVE_DONE, h)
            self.stats.events += 1
            if len(spec.links):
                self._touched.append(np.asarray(spec.links, dtype=np.int64))
        self._alive[done] = False
        self._rates[done] = 0.0
        self._remaining[done] = 0.0
        self._n_dead += int(done.sum())
        self._dirty = True
        if self._n_dead > max(64, len(self._specs) // 2):
            self._compact()

    def _compact(self) -> None:
        """Drop finished slots (amortised O(1) per flow; keeps admission order)."""
        keep = self._alive
        idx = np.flatnonzero(keep)
        self._specs = [self._specs[i] for i in idx]
        self._owner = [self._owner[i] for i in idx]
        remap = np.cumsum(keep) - 1
        ek = keep[self._e_flow]
        self._e_flow = remap[self._e_flow[ek]]
        self._e_link = self._e_link[ek]
        self._e_w = self._e_w[ek]
        self._remaining = self._remaining[keep]
        self._rates = self._rates[keep]
        self._nlinks = self._nlinks[keep]
        self._caps = self._caps[keep]
        self._alive = self._alive[keep]
        if self.cc is not None:
            self.cc.compact(keep)
        self._n_dead = 0

    def _component(self, seed_links: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """Mask of the ``eligible`` flows reachable from ``seed_links`` through links they share."""
        n = len(self._specs)
        live = eligible[self._e_flow]
        e_flow, e_link = self._e_flow[live], self._e_link[live]
        on = np.zeros(len(self.capacity), dtype=bool)
        on[seed_links] = True
        flows = np.zeros(n, dtype=bool)
        while True:
            flows[e_flow[on[e_link]]] = True
            grown = np.zeros_like(on)
            grown[e_link[flows[e_flow]]] = True
            if not (grown & ~on).any():
                return flows
            on |= grown

    def _recompute(self) -> None:
        self._dirty = False
        touched, self._touched = self._touched, []
        r_min, self._done_min_rate = self._done_min_rate, math.inf
        grew, self._grew = self._grew, False
        if not self._alive.any():
            return
        residual = None
        if self.incremental:
            if not touched:
                return
            warm = not grew and math.isfinite(r_min)
            eligible = self._alive & (self._rates >= r_min * (1 - 1e-9)) if warm else self._alive
            affected = self._component(np.concatenate(touched), eligible)
        else:
            affected = self._alive
        idx = np.flatnonzero(affected)
        if not len(idx):
            return
        if self.incremental and warm:  # the kept flows' usage stays on the links
            held = (self._alive & ~affected)[self._e_flow]
            residual = self._cap_eff - np.bincount(
                self._e_link[held], weights=self._rates[self._e_flow[held]] * self._e_w[held],
                minlength=len(self.capacity))
        remap = np.full(len(self._specs), -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        sel = affected[self._e_flow]
        caps = self._caps[idx] if self.cc is None else np.minimum(self._caps[idx], self.cc.rc[idx])
        self._rates[idx] = max_min_rates(remap[self._e_flow[sel]], self._e_link[sel], self._e_w[sel],
                                         len(idx), self._cap_eff, caps, residual)
        self.stats.rate_recomputes += 1
        self.stats.flows_recomputed += len(idx)


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
