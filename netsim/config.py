"""The ``network:`` block of a scenario, validated with pydantic (``extra="forbid"``).

Units live in the field names. GB/s fields are 10^9 **bytes** per second (NVLink,
PCIe: the way vendors quote them); Gb/s fields (``*_gbit``) are 10^9 **bits** per
second (NICs, switch links: the way network gear is quoted). Defaults describe an
H100/H200 cluster: NVLink 450 GB/s per direction per GPU, one 400 Gb/s NIC per GPU,
a 1:1 leaf-spine fabric.

:func:`load_cluster` reads a scenario YAML without importing torch or the rest of
phantora, so ``phantora netbench`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from common.errors import one_line


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_of(what: str, value: object, valid: list[str]) -> str:
    """``value`` if it is one of ``valid``, else a ``ValueError`` naming the valid names (one line)."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


def _registered(field: str, what: str, names: Callable[[], list[str]]) -> Any:
    """A validator: ``field`` must be one of ``names()`` (read when a file is loaded, not at import)."""

    def check(cls: type, v: str) -> str:
        return _one_of(what, v, names())

    return field_validator(field)(classmethod(check))  # type: ignore[arg-type]


# Names are checked against netsim's registries when a scenario is loaded (issue 15), so a typo is
# one line naming the field in every command (`run` with one GPU included), never a traceback later
# or a silently ignored field. The registries are imported lazily: they import this module.


def _transport_names() -> list[str]:
    from netsim.transports import TRANSPORTS

    return TRANSPORTS.names()


def _topology_names() -> list[str]:
    from netsim.topologies import TOPOLOGIES

    return TOPOLOGIES.names()


def _protocol_names() -> list[str]:
    from netsim.collectives import PROTOCOLS

    return [*PROTOCOLS.names(), "auto"]


def _algorithm_names() -> list[str]:
    from netsim.collectives import ALGORITHMS

    return [*ALGORITHMS.names(), "auto"]


def _backend_names() -> list[str]:
    from netsim.backend import backends

    return backends().names()


class TransportConfig(_Strict):
    """Which transport spreads a connection's bytes over the fabric's paths (``netsim.transports``)."""

    name: str = "single_path"
    """``single_path`` (NCCL over RoCE/IB: ECMP per queue pair), ``uccl_multipath``, ``ideal``, ``ethereal``."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword options of the transport's constructor (e.g. ``paths: 256`` for ``uccl_multipath``)."""

    _known = _registered("name", "transport", _transport_names)

    @field_validator("options")
    @classmethod
    def _options_fit(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("name")
        if v and name is not None:  # bad option names or values fail here, not at the first collective
            from netsim.transports import build_transport

            build_transport(name, options=v)  # ValueError naming the transport
        return v


class IntraHostConfig(_Strict):
    """GPU-to-GPU links inside one host (NVLink through NVSwitch)."""

    nvlink_gbps_per_direction: float = Field(450.0, gt=0)
    """NVLink bandwidth per GPU per direction, GB/s (bytes). H100/H200 SXM: 450."""
    nvlink_latency_ns: int = Field(700, ge=0)
    """One NVLink hop (GPU -> NVSwitch -> GPU)."""
    pcie_gbps: float = Field(64.0, gt=0)
    """PCIe Gen5 x16 per direction, GB/s (bytes); GPU <-> NIC when the NIC is not reached over NVLink."""
    model: str = "cta"
    """How NCCL's kernels use NVLink. ``cta`` (default): physical: each NCCL channel is one CTA that moves
    at most ``cta_gbps`` of its kernel, a GPU's flows share ``nvlinks_per_gpu x nvlink_link_gbps``, and
    NCCL's tuner sets the channel count (docs/network.md, "NVLink model"). ``efficiency``: the older
    one-fraction-per-kind cap (``collectives.nvlink_efficiency``)."""
    nvlinks_per_gpu: int = Field(18, ge=1)
    """NVLink links per GPU (H100/H200 SXM: 18 NVLink4)."""
    nvlink_link_gbps: float = Field(20.6, gt=0)
    """Usable data rate of one link per direction, GB/s: NCCL's own figure for NVLink4 (topo.h
    SM90_NVLINK_BW; 18 x 20.6 = 370.8, the `NVL[370.8]` of the shipped 2x H200 log)."""
    nvswitch: bool = True
    """GPUs reach each other through NVSwitch (HGX): a GPU's links are shared by all its peers.
    ``False``: direct links split evenly over the host's peers (e.g. 2 GPUs on a bridge)."""
    channels: int | None = Field(None, ge=1)
    """NCCL channels of a group inside one host; default: NCCL's search rule on the NVLink
    bandwidth (18 links: 12 ring-graph channels, 24 in the communicator, as NCCL 2.28 on 2x H200)."""
    cta_gbps: dict[str, float] = Field(default_factory=lambda: {
        "all_reduce": 11.6, "reduce_scatter": 10.0, "all_gather": 9.8, "p2p": 16.6})
    """GB/s one channel's CTA moves per direction with protocol Simple, per NCCL kernel family
    (``all_reduce``; ``reduce_scatter`` (+reduce); ``all_gather`` (+broadcast); ``p2p``: send/recv,
    all-to-all, gather, scatter). Fitted on the 2x H200 fit set (docs/validation.md, issue 21)."""
    cta_ll_gbps: float = Field(3.4, gt=0)
    """Same for LL, in wire bytes (LL carries 8 data bytes per 16); LL128: Simple's x 120/128."""

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _one_of("NVLink model", v, ["cta", "efficiency"])

    @field_validator("cta_gbps")
    @classmethod
    def _families(cls, v: dict[str, float]) -> dict[str, float]:
        for fam, rate in v.items():
            _one_of("kernel family", fam, ["all_reduce", "reduce_scatter", "all_gather", "p2p"])
            if rate <= 0:
                raise ValueError(f"{fam}: {rate} GB/s is not positive")
        return v


class NicConfig(_Strict):
    """Host network interfaces."""

    gbit: float = Field(400.0, gt=0)
    """NIC line rate, Gb/s (bits) per direction. 400 Gb/s = 50 GB/s."""
    per_gpu: bool = True
    """One NIC per GPU (HGX); ``False``: ``nics_per_host`` NICs shared by the host's GPUs."""
    nics_per_host: int = Field(1, ge=1)
    """Used only when ``per_gpu`` is false."""
    latency_ns: int = Field(1000, ge=0)
    """NIC + PCIe traversal, each end."""


class FabricConfig(_Strict):
    """Switches between hosts."""

    kind: str = "leaf_spine"
    """Topology family (a name in ``netsim.topologies.TOPOLOGIES``): 2-tier ``leaf_spine``, or 3-tier
    ``fat_tree`` (pods of leaf-spine under a core layer)."""
    hosts_per_leaf: int = Field(4, ge=1)
    """Hosts under one leaf (ToR) switch; with ``rail_optimized``, hosts per rail group."""
    spines: int = Field(8, ge=1)
    link_gbit: float = Field(400.0, gt=0)
    """Each leaf<->spine link, Gb/s (bits) per direction."""
    hop_latency_ns: int = Field(600, ge=0)
    """Per switch hop (switching + propagation)."""
    oversubscription: float = Field(1.0, ge=1.0)
    """Leaf downlink capacity / uplink capacity (1 = non-blocking)."""
    leaves_per_pod: int = Field(4, ge=1)
    """``fat_tree`` only: leaves (and their ``spines`` aggregation switches) per pod."""
    cores: int = Field(8, ge=1)
    """``fat_tree`` only: core switches above the pods."""
    core_oversubscription: float = Field(1.0, ge=1.0)
    """``fat_tree`` only: a pod's leaf-uplink capacity / its core-uplink capacity."""
    rail_optimized: bool = False
    """NIC i of every host in a group goes to leaf (group, i): same-rail traffic never reaches a spine."""

    _known = _registered("kind", "topology", _topology_names)


class CollectivesConfig(_Strict):
    """How collectives are decomposed into flows, NCCL-style (``netsim.collectives``)."""

    algorithm: str = "ring"
    """All-reduce algorithm (a name in ``netsim.collectives.ALGORITHMS``: ``ring``, ``tree``); ``auto``
    picks the faster of ring and tree per size, like NCCL's tuner."""
    channels: int = Field(16, ge=1)
    """Rings (NCCL channels) a collective is split over; each ring's inter-host hop is one connection."""
    p2p_channels_per_peer: int = Field(2, ge=1)
    """Connections per peer pair for send/recv and all-to-all."""
    protocol: str = "auto"
    """NCCL protocol (latency vs bandwidth efficiency); ``auto`` picks the fastest per size."""
    pxn: bool = True
    """On a ``rail_optimized`` fabric, move a cross-rail inter-host hop over NVLink to the sending
    host's GPU on the receiver's rail first (NCCL's PXN, on by default since NCCL 2.12), so the
    network hop stays on one rail; ``False``: the sender's own NIC, through a spine."""
    launch_latency_us: float = Field(6.5, ge=0)
    """GPU-side fixed cost of one collective call (kernel launch, proxy handshake), added once; 6.5 fitted
    with the NVLink CTA model on the 2x H200 fit set (docs/validation.md, issue 21)."""
    nvlink_efficiency: dict[str, float] = Field(default_factory=lambda: {
        "all_reduce": 0.70, "all_gather": 0.50, "reduce_scatter": 0.57, "all_to_all": 0.68,
    })
    """Fraction of NVLink bandwidth NCCL's kernels reach per collective kind (measured on 2x H200,
    docs/validation.md); kinds not listed use ``default_nvlink_efficiency``."""
    default_nvlink_efficiency: float = Field(0.66, gt=0, le=1)
    network_efficiency: dict[str, float] = Field(default_factory=lambda: {"all_to_all": 0.87})
    """Fraction of the network path's rate reached by a collective's flows that leave the host, per kind
    (kinds not listed: 1). all_to_all: 0.87, fitted on packet-level ns-3 (8 hosts, 1:1: the many queue
    pairs per NIC drain unevenly through FIFO switch queues, max-min would end them all together) and
    checked on 32 hosts at 2:1 (docs/validation.md, issue 6)."""

    tuner: str = "nccl"
    """``nccl`` (default): NCCL's cost model (src/graph/tuning.cc, netsim.collectives.tuner) picks the
    algorithm (with ``algorithm: auto``), the protocol (``protocol: auto``) and trims the channels per
    call; NCCL's base and per-step latencies are used. ``fixed``: ``algorithm``/``protocol``/``channels``
    as given, latencies from ``netsim.collectives.protocols`` (what the ns-3 cross-validation uses)."""
    nccl_algo: str = ""
    """NCCL_ALGO-style override (``ring``, ``tree``, ``^tree``, ``ring;allreduce:tree``), tuner ``nccl``."""
    nccl_proto: str = ""
    """NCCL_PROTO-style override (``Simple``, ``^LL128``, ``LL,Simple;allreduce:LL128``), tuner ``nccl``."""

    _known_algorithm = _registered("algorithm", "all-reduce algorithm", _algorithm_names)

    _known_protocol = _registered("protocol", "NCCL protocol", _protocol_names)

    @field_validator("tuner")
    @classmethod
    def _tuner(cls, v: str) -> str:
        return _one_of("tuner", v, ["nccl", "fixed"])

    @field_validator("nccl_algo", "nccl_proto")
    @classmethod
    def _nccl_spec(cls, v: str, info: ValidationInfo) -> str:
        from netsim.collectives.tuner import ALGOS, FUNCS, PROTOS, enabled_set

        for f in FUNCS:  # raises on an unknown element or prefix, naming the valid ones
            enabled_set(v, f, ALGOS if info.field_name == "nccl_algo" else PROTOS)
        return v

    @field_validator("nvlink_efficiency", "network_efficiency")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        from netsim.collectives import COLLECTIVES

        for kind, eff in v.items():
            _one_of("collective", kind, COLLECTIVES.names())
            if not 0 < eff <= 1:
                raise ValueError(f"{kind}: {eff} is not a fraction in (0, 1]")
        return v


class NetworkConfig(_Strict):
    """Everything netsim needs besides the host and GPU counts."""

    backend: str = "flow"
    """A name in ``netsim.backend.NETWORK_BACKENDS``: ``flow`` (netsim's flow-level engine), ``ns3``
    (packet-level ns-3, netsim.ns3), ``alpha_beta`` (latency + bytes / bandwidth, no contention)."""
    transport: TransportConfig = Field(default_factory=TransportConfig)
    intra_host: IntraHostConfig = Field(default_factory=IntraHostConfig)
    nic: NicConfig = Field(default_factory=NicConfig)
    fabric: FabricConfig = Field(default_factory=FabricConfig)
    collectives: CollectivesConfig = Field(default_factory=CollectivesConfig)
    seed: int = 0
    """Seeds the ECMP hash: same seed, same paths, same result."""

    _known_backend = _registered("backend", "network backend", _backend_names)


class ClusterConfig(_Strict):
    """The network-relevant part of a scenario: its shape and its ``network:`` block. phantora's
    ``Scenario`` extends this model (same fields, same file layout), so the two never drift."""

    name: str = ""
    hosts: int = Field(1, ge=1)
    gpus_per_host: int = Field(1, ge=1)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    """Network description; default: an H100/H200 cluster."""

    @property
    def world_size(self) -> int:
        return self.hosts * self.gpus_per_host


class ConfigError(Exception):
    """A scenario that cannot be used; ``str()`` is the one line to show the user."""


def cluster_from_dict(data: dict[str, Any], source: str = "<scenario>") -> ClusterConfig:
    """Validate the ``name``/``hosts``/``gpus_per_host``/``network`` keys; other keys are ignored."""
    keys = ("name", "hosts", "gpus_per_host", "network")
    picked = {k: data[k] for k in keys if k in data and data[k] is not None}
    try:
        return ClusterConfig.model_validate(picked)
    except ValidationError as e:
        raise ConfigError(one_line(source, e)) from None


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read a scenario YAML's network-relevant keys (torch-free; ``extends:`` is not followed)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    return cluster_from_dict(data, str(path))
