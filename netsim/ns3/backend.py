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
from dataclasses import dataclass, replace
from typing import Any

from netsim.ns3.flowsets import COLLECTIVE_FLOWSETS
from netsim.ns3.spec import FabricSpec, FlowResult, PacketFlow, PacketRun, TransportSpec

#: Transport names of the flow-level engine and whether each sprays over every spine.
MULTIPATH_TRANSPORTS = {"single_path": False, "uccl_multipath": True, "ideal": True}


@dataclass(frozen=True, slots=True)
class CollectiveHandle:
    """Names one submitted collective; ``result`` maps it to per-rank completion times."""

    index: int
    tag: str


class Ns3Network:
    """Packet-level network with the flow engine's submit/run/result shape.

    Ranks are hosts (one GPU and one NIC per host): intra-host NVLink traffic is not on
    the fabric and is not modelled here.
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
    ) -> None:
        self.fabric = fabric
        self.transport = transport or TransportSpec()
        self.multipath = multipath
        self.channels = channels
        self.seed = seed
        self.in_subprocess = in_subprocess
        self._flows: list[PacketFlow] = []
        self._groups: list[tuple[str, list[int], dict[int, list[int]]]] = []  # tag, ranks, rank -> flow ids
        self._run: PacketRun | None = None
        self._by_id: dict[int, FlowResult] = {}
        self._now_ns = 0

    # ---- submission ---------------------------------------------------------------------------
    def submit_flows(self, flows: Sequence[PacketFlow], tag: str = "flows") -> CollectiveHandle:
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
        return CollectiveHandle(len(self._groups) - 1, tag)

    def submit_collective(
        self,
        kind: str,
        ranks: Sequence[int],
        nbytes: int,
        start_ns_per_rank: Mapping[int, int] | Sequence[int] | None = None,
        tag: str = "",
    ) -> CollectiveHandle:
        """A collective over hosts ``ranks`` (nccl-tests' size ``nbytes``); see :mod:`flowsets`."""
        try:
            build = COLLECTIVE_FLOWSETS[kind]
        except KeyError:
            valid = ", ".join(sorted(COLLECTIVE_FLOWSETS))
            raise ValueError(f"ns3 backend: collective {kind!r} not supported; valid: {valid}") from None
        ranks = list(ranks)
        if len(set(ranks)) != len(ranks) or any(not 0 <= r < self.fabric.n_hosts for r in ranks):
            raise ValueError(f"ns3 backend: ranks must be distinct hosts in 0..{self.fabric.n_hosts - 1}")
        if start_ns_per_rank is None:
            starts = [0] * len(ranks)
        elif isinstance(start_ns_per_rank, Mapping):
            starts = [int(start_ns_per_rank[r]) for r in ranks]
        else:
            starts = [int(t) for t in start_ns_per_rank]
        sub = replace(self.fabric, n_hosts=len(ranks), hosts_per_leaf=len(ranks))  # logical ring order
        local = build(sub, nbytes, channels=self.channels, multipath=self.multipath, seed=self.seed)
        flows = []
        for f in local:
            src, dst = ranks[f.src_host], ranks[f.dst_host]
            spines = (
                tuple(range(self.fabric.n_spines))
                if self.multipath
                else (self._ecmp(src, dst, f.qp),)
            )
            flows.append(
                replace(f, src_host=src, dst_host=dst, spines=spines, start_ns=max(f.start_ns, starts[f.src_host]))
            )
        return self.submit_flows(flows, tag or kind)

    def _ecmp(self, src: int, dst: int, qp: int) -> int:
        from netsim.ns3.flowsets import ecmp_spine

        return ecmp_spine(src, dst, qp, self.fabric.n_spines, self.seed)

    # ---- time and results -----------------------------------------------------------------------
    def _simulate(self) -> PacketRun:
        if self._run is None:
            if self.in_subprocess:
                from netsim.ns3.runner import simulate_in_subprocess as sim
            else:
                from netsim.ns3.runner import simulate as sim
            self._run = sim(self.fabric, self.transport, self._flows)
            self._by_id = {r.flow_id: r for r in self._run.flows}
        return self._run

    def next_event_ns(self) -> int | None:
        """Earliest completion still ahead of ``now_ns`` (None when nothing is pending)."""
        run = self._simulate()
        ahead = [r.finish_ns for r in run.flows if r.finish_ns > self._now_ns]
        return min(ahead) if ahead else None

    def run_until(self, t_ns: int) -> None:
        self._simulate()
        self._now_ns = max(self._now_ns, int(t_ns))

    @property
    def now_ns(self) -> int:
        return self._now_ns

    def result(self, handle: CollectiveHandle) -> dict[int, int]:
        """Per-rank completion time: when the rank's last send or receive of the collective ended."""
        self._simulate()
        _, ranks, owned = self._groups[handle.index]
        return {r: max(self._by_id[i].finish_ns for i in owned[r]) for r in ranks}

    @property
    def last_run(self) -> PacketRun:
        return self._simulate()


def fabric_from_network(hosts: int, network: Any, scale: float = 1.0) -> FabricSpec:
    """Build the ns-3 fabric from a scenario's ``network`` block (netsim ``NetworkConfig``).

    Reads ``nic.gbps``, ``fabric.hosts_per_leaf``, ``fabric.spines``, ``fabric.link_gbps``,
    ``fabric.oversubscription`` and ``fabric.hop_latency_ns`` when present (one NIC per
    host); ``scale`` divides link rates, as the cross-validation does.
    """
    nic = getattr(network, "nic", None)
    fab = getattr(network, "fabric", None)
    nic_gbps = float(getattr(nic, "gbps", 400.0)) / scale
    hpl = int(getattr(fab, "hosts_per_leaf", hosts) or hosts)
    spines = int(getattr(fab, "spines", 1) or 1)
    over = float(getattr(fab, "oversubscription", 1.0) or 1.0)
    link = getattr(fab, "link_gbps", None)
    uplink = float(link) / scale if link else nic_gbps * min(hpl, hosts) / (spines * over)
    return FabricSpec(
        n_hosts=hosts, hosts_per_leaf=min(hpl, hosts), n_spines=spines, nic_gbps=nic_gbps, uplink_gbps=uplink,
        hop_latency_ns=int(getattr(fab, "hop_latency_ns", 1000)),
    )  # fmt: skip
