"""``network.backend: ns3``: collectives and flows answered by packet-level ns-3 runs.

:class:`Ns3Network` offers the coordinator-facing calls of the flow-level engine
(``submit_collective``, ``submit_flows``, ``run_until``, ``result``) on a one-NIC-per-host
leaf-spine. ns-3 cannot add traffic to a finished run, so the backend records what is
submitted and (re)simulates everything submitted so far the first time a result is asked
for after a change. That is exact for batch use (netbench, cross-validation) and costly for
a long live job: it is a validation backend, not the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from common.kinds import CollectiveKind
from netsim.backend import NETWORK_BACKENDS, NetworkBackend
from netsim.collectives import COLLECTIVES
from netsim.collectives.protocols import Protocol
from netsim.config import NetworkConfig
from netsim.ns3.flowsets import COLLECTIVE_FLOWSETS, NO_LATENCY, StepLatency, ecmp_spine, protocol_steps
from netsim.ns3.spec import FabricSpec, FlowResult, PacketFlow, PacketRun, TransportSpec
from netsim.transports import TRANSPORTS

MULTIPATH_TRANSPORTS = {"single_path": False, "uccl_multipath": True, "ideal": True}
"""The flow engine's transports ns-3 can model, and whether each sprays over every spine
(``ethereal``'s least-used path assignment has no packet-level counterpart here)."""

# ns-3 models a subset of what netsim's registries name: a rename there must fail here, at import.
for _t in MULTIPATH_TRANSPORTS:
    TRANSPORTS.get(_t)
for _k in COLLECTIVE_FLOWSETS:
    COLLECTIVES.get(_k)


@NETWORK_BACKENDS.register("ns3")
class Ns3Network(NetworkBackend):
    """Packet-level :class:`~netsim.backend.NetworkBackend` (same calls as the flow engine).

    Ranks are hosts (one GPU and one NIC per host): intra-host NVLink traffic is not on
    the fabric and is not modelled here. ``protocol`` (``LL``, ``LL128``, ``Simple``, or
    ``auto``: the flow engine's own choice, which needs ``network_config``) adds NCCL's software
    latencies to every collective (:class:`~netsim.ns3.flowsets.StepLatency`), with
    ``launch_latency_us`` per call; ``None`` simulates the network alone.
    """

    def __init__(
        self,
        fabric: FabricSpec,
        transport: TransportSpec | None = None,
        *,
        multipath: bool = False,
        channels: int = 2,
        seed: int = 0,
        in_subprocess: bool = False,
        protocol: str | None = None,
        launch_latency_us: float = 0.0,
        network_config: Any = None,
    ) -> None:
        if protocol == "auto" and network_config is None:
            raise ValueError("ns3 backend: protocol 'auto' needs network_config (the engine's choice reads it)")
        if protocol not in (None, "auto"):
            StepLatency.of(protocol)  # unknown names fail here, listing the valid ones
        self.fabric = fabric
        self.transport = transport or TransportSpec()
        self.multipath = multipath
        self.channels = channels
        self.seed = seed
        self.in_subprocess = in_subprocess
        self.protocol = protocol
        self.launch_latency_us = launch_latency_us
        self.network_config = network_config
        self._flows: list[PacketFlow] = []
        self._groups: list[tuple[Any, list[int], dict[int, list[int]]]] = []  # tag, ranks, rank -> flow ids
        self._reported: set[int] = set()
        self.transport_name = "uccl_multipath" if multipath else "single_path"
        self._run: PacketRun | None = None
        self._by_id: dict[int, FlowResult] = {}
        self._now_ns = 0

    # ---- submission ---------------------------------------------------------------------------
    @classmethod
    def build(  # type: ignore[override]  # ``scale`` (link-rate divisor) is for the cross-validation
        cls, hosts: int, gpus_per_host: int, config: NetworkConfig | None = None, transport: str | None = None,
        scale: float = 1.0,
    ) -> Ns3Network:
        """The ns-3 backend for a scenario's ``network`` block; what it cannot model is a ``ValueError``
        naming the field (one GPU and NIC per host; the transports in :data:`MULTIPATH_TRANSPORTS`)."""
        config = config or NetworkConfig()
        if gpus_per_host != 1:
            raise ValueError(f"network.backend: ns3 models one GPU and one NIC per host; it needs gpus_per_host: 1 "
                             f"(this run has {gpus_per_host}); use backend: flow")
        name = transport or config.transport.name
        if name not in MULTIPATH_TRANSPORTS:
            raise ValueError(f"network.transport.name: {name!r} is not available with backend ns3; valid: "
                             f"{', '.join(sorted(MULTIPATH_TRANSPORTS))}")
        colls = config.collectives
        return cls(
            fabric_from_network(hosts, config, scale), multipath=MULTIPATH_TRANSPORTS[name],
            channels=colls.channels, seed=config.seed, protocol=colls.protocol,
            launch_latency_us=colls.launch_latency_us, network_config=config,
        )  # fmt: skip

    def supports(self, kind: str) -> bool:
        return kind in COLLECTIVE_FLOWSETS

    def submit_flows(self, flows: Sequence[PacketFlow], tag: Any = None) -> int:
        """Add raw flows (ids are renumbered; deps refer to ids within ``flows``)."""
        base = len(self._flows)
        remap = {f.flow_id: base + i for i, f in enumerate(flows)}
        owned: dict[int, list[int]] = {}
        for f in flows:
            g = replace(f, flow_id=remap[f.flow_id], deps=tuple(remap[d] for d in f.deps))
            self._flows.append(g)
            owned.setdefault(f.dst_host, []).append(g.flow_id)
            owned.setdefault(f.src_host, []).append(g.flow_id)
        self._groups.append((tag, sorted(owned), owned))
        self._run = None
        return len(self._groups) - 1

    def submit_collective(
        self,
        kind: str,
        ranks: Sequence[int],
        nbytes: int,
        start_ns: Mapping[int, int] | Sequence[int] | int = 0,
        tag: Any = None,
        *,
        matrix: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """A collective over hosts ``ranks`` (nccl-tests' size ``nbytes``); see :mod:`flowsets`.
        ``matrix`` (an uneven all-to-all) is refused unless every pair moves the same bytes."""
        if matrix is not None:
            off = {float(b) for i, row in enumerate(matrix) for j, b in enumerate(row) if i != j}
            if len(off) > 1:
                raise ValueError("ns3 backend: uneven all_to_all (a traffic matrix) not supported; use the flow "
                                 "engine (network.backend: flow)")
        try:
            build = COLLECTIVE_FLOWSETS[CollectiveKind(kind)]
        except (KeyError, ValueError):
            valid = ", ".join(sorted(COLLECTIVE_FLOWSETS))
            raise ValueError(f"ns3 backend: collective {kind!r} not supported; valid: {valid}") from None
        ranks = list(ranks)
        if len(set(ranks)) != len(ranks) or any(not 0 <= r < self.fabric.n_hosts for r in ranks):
            raise ValueError(f"ns3 backend: ranks must be distinct hosts in 0..{self.fabric.n_hosts - 1}")
        if isinstance(start_ns, int):
            starts = [start_ns] * len(ranks)
        elif isinstance(start_ns, Mapping):
            starts = [int(start_ns[r]) for r in ranks]
        else:
            starts = [int(t) for t in start_ns]
        sub = replace(self.fabric, n_hosts=len(ranks), hosts_per_leaf=len(ranks))  # logical ring order
        latency = self.step_latency(kind, len(ranks), nbytes)
        local = build(sub, nbytes, channels=self.channels, multipath=self.multipath, seed=self.seed, latency=latency)
        flows = []
        for f in local:
            src, dst = ranks[f.src_host], ranks[f.dst_host]
            spines = (
                tuple(range(self.fabric.n_spines))
                if self.multipath
                else (ecmp_spine(src, dst, f.qp, self.fabric.n_spines, self.seed),)
            )
            flows.append(
                replace(f, src_host=src, dst_host=dst, spines=spines, start_ns=max(f.start_ns, starts[f.src_host]))
            )
        return self.submit_flows(flows, tag if tag is not None else kind)

    def step_latency(self, kind: str, n: int, nbytes: float) -> StepLatency:
        """The software latency of one ``kind`` call on ``n`` hosts (none when ``protocol`` is None)."""
        if self.protocol is None:
            return NO_LATENCY
        name = self.protocol
        if name == "auto" or self.network_config is not None:  # exactly the engine's latencies
            return StepLatency.from_protocol(engine_protocol_of(kind, n, nbytes, self.network_config),
                                             self.launch_latency_us)
        return StepLatency.of(name, self.launch_latency_us)

    # ---- time and results -----------------------------------------------------------------------
    def _simulate(self) -> PacketRun:
        if self._run is None:
            from netsim.ns3 import runner

            sim = runner.simulate_in_subprocess if self.in_subprocess else runner.simulate
            self._run = sim(self.fabric, self.transport, self._flows)
            self._by_id = {r.flow_id: r for r in self._run.flows}
        return self._run

    def next_event_ns(self) -> int | None:
        """Earliest completion still ahead of ``now_ns`` (None when nothing is pending)."""
        run = self._simulate()
        ahead = [r.finish_ns for r in run.flows if r.finish_ns > self._now_ns]
        if not ahead and any(h not in self._reported for h in range(len(self._groups))):
            return self._now_ns
        return min(ahead) if ahead else None

    def run_until(self, t_ns: int) -> list[int]:
        """Advance to ``t_ns``; handles of collectives that ended by then, in end order."""
        self._simulate()
        self._now_ns = max(self._now_ns, int(t_ns))
        ends = {h: max(self.result_unchecked(h).values(), default=0) for h in range(len(self._groups))}
        done = sorted((e, h) for h, e in ends.items() if e <= self._now_ns and h not in self._reported)
        self._reported.update(h for _, h in done)
        return [h for _, h in done]

    @property
    def now_ns(self) -> int:
        return self._now_ns

    def result(self, handle: int) -> dict[int, int]:
        """Per-rank end time: when the rank's last send or receive of the collective ended."""
        ends = self.result_unchecked(handle)
        if max(ends.values(), default=0) > self._now_ns:
            raise RuntimeError(f"collective {handle} has not finished by t={self._now_ns} ns")
        return ends

    def result_unchecked(self, handle: int) -> dict[int, int]:
        """Per-rank end times from the packet-level run, whatever ``now_ns`` is."""
        self._simulate()
        _, ranks, owned = self._groups[handle]
        return {r: max(self._by_id[i].finish_ns for i in owned[r]) for r in ranks}

    @property
    def last_run(self) -> PacketRun:
        return self._simulate()


class _OneGpuPerHost:
    """The part of a topology ``Plan.choose_protocol`` reads: ranks are hosts here."""

    gpus_per_host = 1

    @staticmethod
    def host_of(rank: int) -> int:
        return rank


def engine_protocol(kind: str, n: int, nbytes: float, network_config: Any) -> str:
    """The NCCL protocol the flow engine picks for this call (``collectives.protocol: auto``):
    its own ``Plan.choose_protocol``, fed the steps and bytes its decomposition would pass."""

    return engine_protocol_of(kind, n, nbytes, network_config).name


def engine_protocol_of(kind: str, n: int, nbytes: float, network_config: Any) -> Protocol:
    """The engine's protocol with the latencies it uses (NCCL's tuner's with ``tuner: nccl``)."""
    from netsim.collectives.base import Plan
    from netsim.collectives.pairwise import _p2p_protocol

    steps, per_rank = protocol_steps(kind, n, nbytes)
    plan = Plan(kind, list(range(n)), float(nbytes), {}, _OneGpuPerHost(), None, network_config)  # type: ignore[arg-type]
    if plan.nccl and kind in ("all_to_all", "send_recv", "gather", "scatter"):
        k = network_config.collectives.p2p_channels_per_peer
        return _p2p_protocol(plan, nbytes / n if kind == "all_to_all" else nbytes, k)
    return plan.choose_protocol(steps, per_rank)


def fabric_from_network(hosts: int, network: Any, scale: float = 1.0) -> FabricSpec:
    """Build the ns-3 fabric from a scenario's ``network`` block (netsim ``NetworkConfig``).

    Reads ``nic.gbit``, ``fabric.hosts_per_leaf``, ``fabric.spines``, ``fabric.link_gbit``,
    ``fabric.oversubscription`` and ``fabric.hop_latency_ns`` (one NIC per host; the
    leaf-spine link rate is ``link_gbit / oversubscription``); ``scale`` divides link
    rates, as the cross-validation does.
    """
    nic = getattr(network, "nic", None)
    fab = getattr(network, "fabric", None)
    nic_gbps = float(getattr(nic, "gbit", 400.0)) / scale
    hpl = int(getattr(fab, "hosts_per_leaf", hosts) or hosts)
    spines = int(getattr(fab, "spines", 1) or 1)
    over = float(getattr(fab, "oversubscription", 1.0) or 1.0)
    uplink = float(getattr(fab, "link_gbit", nic_gbps * scale)) / scale / over
    return FabricSpec(
        n_hosts=hosts, hosts_per_leaf=min(hpl, hosts), n_spines=spines, nic_gbps=nic_gbps, uplink_gbps=uplink,
        hop_latency_ns=int(getattr(fab, "hop_latency_ns", 1000)),
    )  # fmt: skip
