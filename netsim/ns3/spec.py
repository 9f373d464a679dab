"""Plain descriptions of what the ns-3 backend simulates: fabric, transport, flows, results.

Kept free of ns-3 (and of pydantic) so they can be built, hashed and sent as JSON to a
worker subprocess without paying the ns-3 import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class FabricSpec:
    """A two-tier leaf-spine fabric with one NIC per host, as built in ns-3."""

    n_hosts: int
    hosts_per_leaf: int
    n_spines: int = 1
    nic_gbps: float = 100.0
    """Host NIC <-> leaf link rate, each direction."""
    uplink_gbps: float = 100.0
    """Each leaf <-> spine link rate (already divided by the oversubscription ratio)."""
    hop_latency_ns: int = 1000
    """Propagation delay of every link (one hop)."""
    mtu_bytes: int = 9000
    queue_packets: int = 1000
    """Per-port queue (RED queue disc) capacity; with ECN, drops only on overflow."""
    ecn_min_packets: int = 5
    """RED starts ECN-marking above this queue depth (DCTCP's K ~ BDP/7; a few jumbo frames)."""
    ecn_max_packets: int = 15
    """Above this depth every data packet is marked."""
    use_ecn: bool = True

    @property
    def n_leaves(self) -> int:
        return -(-self.n_hosts // self.hosts_per_leaf)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSpec:
    """TCP settings for every sub-flow (see README: DCTCP stands in for RDMA congestion control)."""

    congestion_control: str = "dctcp"
    """One of ns-3's TCP variants: dctcp, newreno, cubic (dctcp-unfloored: ns-3's DCTCP without
    the window floor, which can stall a queue pair; kept to show that bug)."""
    min_cwnd_segments: int = 1
    """dctcp: an ECN cut never takes the window below this many segments (Linux DCTCP: 2)."""
    chunk_bytes: int = 32768
    """Multipath: a path's connection claims this many bytes of a sprayed flow at a time."""
    claim_below_bytes: int = 65536
    """Multipath: a connection claims a new chunk only while it holds less than this unacked
    or unsent; a slow (congested) path therefore takes fewer chunks."""
    snd_buf_bytes: int = 4 << 20
    rcv_buf_bytes: int = 4 << 20
    initial_cwnd_segments: int = 10
    delayed_ack_count: int = 1
    min_rto_us: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketFlow:
    """One message of ``size_bytes`` from host ``src_host`` to ``dst_host``.

    ``spines`` lists one spine per sub-flow: one entry pins a single-path queue pair to
    that spine (its ECMP choice); several entries spray the flow over those paths.
    The flow is *ready* at ``start_ns`` or when every flow in ``deps`` has finished, whichever
    is later, and its data starts ``delay_ns`` after that: NCCL's software latency (protocol
    base latency before a call's first step, per-step latency before each step; see
    :class:`netsim.ns3.flowsets.StepLatency`), which the network does not produce.
    """

    flow_id: int
    src_host: int
    dst_host: int
    size_bytes: int
    start_ns: int = 0
    spines: tuple[int, ...] = (0,)
    deps: tuple[int, ...] = field(default=())
    delay_ns: int = 0
    """Software latency between the flow being ready and its first byte being sent."""
    qp: int = 0
    """Queue pair (NCCL channel) of the (src, dst) pair: flows with the same (src, dst, qp,
    spine) share one connection and are delivered in order, like messages on one RDMA QP."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PacketFlow:
        return cls(**{**d, "spines": tuple(d["spines"]), "deps": tuple(d["deps"])})


@dataclass(frozen=True, slots=True)
class FlowResult:
    """When a flow started (its deps done) and when its last byte reached the receiver."""

    flow_id: int
    start_ns: int
    finish_ns: int

    @property
    def duration_ns(self) -> int:
        return self.finish_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class PacketRun:
    """Outcome of one packet-level run: per-flow times plus what explains deviations."""

    flows: list[FlowResult]
    drops: int
    """Packets dropped by a full queue anywhere (each costs a retransmission timeout)."""
    wall_s: float

    @property
    def finish_ns(self) -> int:
        return max((r.finish_ns for r in self.flows), default=0)
