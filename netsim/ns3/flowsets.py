"""Collectives as sets of :class:`PacketFlow` on a one-NIC-per-host leaf-spine.

The cross-validation needs one flow set that both backends simulate. When the flow-level
engine's own decomposition is importable (``netsim.collectives``), :mod:`netsim.ns3.backend`
converts *its* flows; this module is the stand-alone decomposition used by the ns-3 tests
and as the fallback, following NCCL's Simple protocol at host granularity:

* ring all-reduce: ``2(n-1)`` steps; at each step every rank sends ``S/n`` to its ring
  successor, after the chunk it received at the previous step has arrived;
* ring all-gather: ``n-1`` such steps (``S`` = total output bytes, nccl-tests' size);
* all-to-all: every rank sends ``S/n`` to every other rank at once.

Each step flow is split over ``channels`` queue pairs. Single-path pins each queue pair to
the spine chosen by :func:`ecmp_spine` (a seeded 5-tuple-like hash, so the same pairs
collide on every run, and the same ones as in the flow engine); multipath sprays each queue
pair over every spine.

NCCL's software latency (protocol base latency per call, a per-step latency per network
hop) is not produced by the network; :class:`StepLatency` puts the same terms the flow
engine adds (``netsim.collectives.protocols.PROTOCOLS``) on the flows as ``delay_ns``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.kinds import CollectiveKind
from netsim.collectives.protocols import PROTOCOLS, Protocol
from netsim.ns3.spec import FabricSpec, PacketFlow
from netsim.transports.base import mix64, mix64_many


@dataclass(frozen=True, slots=True, kw_only=True)
class StepLatency:
    """NCCL's software latency on a flow set: ``call_ns`` once before a call's first step, and
    ``step_ns`` before every step (a ring step, or the one step of an all-to-all message).

    Same terms as the flow engine (``Plan.launch_ns`` + ``steps`` x ``step_latency_net_us`` in
    ``Plan.path_flow``) and NCCL's tuning model, which charges ``nsteps`` per-step latencies,
    the first step's included. Every ns-3 hop is a network hop (one GPU/NIC per host).
    """

    call_ns: int = 0
    step_ns: int = 0

    @classmethod
    def of(cls, protocol: str, launch_latency_us: float = 0.0) -> StepLatency:
        """The latencies of NCCL protocol ``protocol`` (``LL``, ``LL128``, ``Simple``)."""
        return cls.from_protocol(PROTOCOLS.get(protocol), launch_latency_us)

    @classmethod
    def from_protocol(cls, p: Protocol, launch_latency_us: float = 0.0) -> StepLatency:
        """The latencies ``p`` carries (NCCL's tuner's, when the engine's ``tuner`` is ``nccl``)."""
        return cls(call_ns=round((launch_latency_us + p.base_latency_us) * 1e3),
                   step_ns=round(p.step_latency_net_us * 1e3))


NO_LATENCY = StepLatency()
"""Pure network: flows start as soon as they are ready (the comparison before protocol latencies)."""


def ecmp_spine(src: int, dst: int, channel: int, n_spines: int, seed: int = 0) -> int:
    """Per-queue-pair ECMP choice, with the flow engine's own hash (``single_path`` with one QP
    per connection, keyed by (src, dst, channel)), so the same pairs collide in both backends."""
    idx = mix64_many(mix64(seed, src, dst, channel), np.arange(1)) % np.uint64(n_spines)
    return int(idx[0])


def _paths(fabric: FabricSpec, src: int, dst: int, channel: int, multipath: bool, seed: int) -> tuple[int, ...]:
    if multipath:
        return tuple(range(fabric.n_spines))
    return (ecmp_spine(src, dst, channel, fabric.n_spines, seed),)


def _split(nbytes: int, parts: int) -> list[int]:
    base, extra = divmod(nbytes, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _ring(
    fabric: FabricSpec, size_bytes: int, steps: int, channels: int, multipath: bool, seed: int,
    latency: StepLatency,
) -> list[PacketFlow]:
    n = fabric.n_hosts
    flows: list[PacketFlow] = []
    if n < 2:
        return flows
    chunk = size_bytes // n
    # ids: step-major, then rank, then channel
    def fid(step: int, rank: int, ch: int) -> int:
        return (step * n + rank) * channels + ch

    for step in range(steps):
        for rank in range(n):
            nxt = (rank + 1) % n
            for ch, part in enumerate(_split(chunk, channels)):
                deps = (fid(step - 1, (rank - 1) % n, ch),) if step else ()
                flows.append(
                    PacketFlow(
                        flow_id=fid(step, rank, ch), src_host=rank, dst_host=nxt, size_bytes=part,
                        spines=_paths(fabric, rank, nxt, ch, multipath, seed), deps=deps, qp=ch,
                        delay_ns=latency.step_ns + (0 if step else latency.call_ns),
                    )
                )
    return flows


def ring_all_reduce(
    fabric: FabricSpec, size_bytes: int, channels: int = 1, multipath: bool = False, seed: int = 0,
    latency: StepLatency = NO_LATENCY,
) -> list[PacketFlow]:
    return _ring(fabric, size_bytes, 2 * (fabric.n_hosts - 1), channels, multipath, seed, latency)


def ring_all_gather(
    fabric: FabricSpec, size_bytes: int, channels: int = 1, multipath: bool = False, seed: int = 0,
    latency: StepLatency = NO_LATENCY,
) -> list[PacketFlow]:
    return _ring(fabric, size_bytes, fabric.n_hosts - 1, channels, multipath, seed, latency)


def all_to_all(
    fabric: FabricSpec, size_bytes: int, channels: int = 1, multipath: bool = False, seed: int = 0,
    latency: StepLatency = NO_LATENCY,
) -> list[PacketFlow]:
    n = fabric.n_hosts
    flows: list[PacketFlow] = []
    for src in range(n):
        for dst in range(n):
            if src == dst:
                continue
            for ch, part in enumerate(_split(size_bytes // n, channels)):
                flows.append(
                    PacketFlow(
                        flow_id=len(flows), src_host=src, dst_host=dst, size_bytes=part,
                        spines=_paths(fabric, src, dst, ch, multipath, seed), qp=ch,
                        delay_ns=latency.call_ns + latency.step_ns,
                    )
                )
    return flows


FlowsetBuilder = Callable[..., list[PacketFlow]]

COLLECTIVE_FLOWSETS: dict[CollectiveKind, FlowsetBuilder] = {
    CollectiveKind.ALL_REDUCE: ring_all_reduce,
    CollectiveKind.ALL_GATHER: ring_all_gather,
    CollectiveKind.ALL_TO_ALL: all_to_all,
}
"""The kinds ns-3 can time (a subset of the flow engine's ``COLLECTIVES``, keyed by the same kinds)."""


def protocol_steps(op: str, n: int, size_bytes: float) -> tuple[int, float]:
    """``(steps, bytes each rank sends)`` that the flow engine's decomposition hands its protocol
    choice (``Plan.choose_protocol``) for ``op`` on ``n`` ranks (per peer for all-to-all)."""
    kind = CollectiveKind.parse(op)
    if kind is CollectiveKind.ALL_REDUCE:
        return 2 * (n - 1), 2 * (n - 1) / n * size_bytes
    if kind is CollectiveKind.ALL_GATHER:
        return n - 1, (n - 1) / n * size_bytes
    if kind is CollectiveKind.ALL_TO_ALL:
        return 1, size_bytes / n
    raise ValueError(f"ns3 backend: collective {op!r} not supported; valid: {', '.join(COLLECTIVE_FLOWSETS)}")
