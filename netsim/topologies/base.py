"""The topology interface the flow engine and transports rely on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.registry import Registry
from netsim.config import NetworkConfig


@dataclass(frozen=True, slots=True)
class Route:
    """How bytes get from one GPU to another.

    ``fixed`` links are on every path; ``choices`` (shape ``(paths, k)``) lists the
    equal-cost alternatives for the rest (empty when there is only one way, e.g. NVLink
    or two hosts under one leaf). A transport decides how a connection uses them.
    """

    fixed: np.ndarray
    choices: np.ndarray
    latency_ns: int
    src_group: int
    """Switch the source attaches to (leaf), for transports that balance per leaf pair."""
    dst_group: int

    @property
    def n_paths(self) -> int:
        return max(1, len(self.choices))


class Topology:
    """Links (capacity in bytes/ns = GB/s, latency) and routes between GPUs.

    Subclasses fill ``capacity_gbps``/``link_names`` in ``__init__`` and implement
    :meth:`route`. GPU ``g`` lives on host ``g // gpus_per_host``.
    """

    def __init__(self, hosts: int, gpus_per_host: int, config: NetworkConfig) -> None:
        self.hosts = hosts
        self.gpus_per_host = gpus_per_host
        self.config = config
        self.capacity_gbps: np.ndarray = np.zeros(0)
        self.link_names: list[str] = []
        self.nvlink_links: np.ndarray = np.zeros(0, dtype=bool)
        self._routes: dict[tuple[int, int], Route] = {}

    @property
    def n_gpus(self) -> int:
        return self.hosts * self.gpus_per_host

    @property
    def n_links(self) -> int:
        return len(self.capacity_gbps)

    def host_of(self, gpu: int) -> int:
        return gpu // self.gpus_per_host

    def switch_egress(self) -> np.ndarray:
        """Mask of links that are a switch's egress queue (leaf, spine, core ports and the leaf port
        down to a NIC): where ECN marks. NVLink, PCIe and a NIC's own uplink are not (a NIC arbitrates
        its queue pairs locally)."""
        host_side = ("nvl_", "nic_up", "pcie_")
        return np.array([not n.startswith(host_side) for n in self.link_names], dtype=bool)

    def _add_links(self, names: list[str], gbps: float, nvlink: bool = False) -> np.ndarray:
        start = len(self.link_names)
        self.link_names.extend(names)
        self.capacity_gbps = np.concatenate([self.capacity_gbps, np.full(len(names), float(gbps))])
        self.nvlink_links = np.concatenate([self.nvlink_links, np.full(len(names), nvlink)])
        return np.arange(start, start + len(names))

    def route(self, src: int, dst: int) -> Route:
        """The (cached) route from GPU ``src`` to GPU ``dst``."""
        key = (src, dst)
        r = self._routes.get(key)
        if r is None:
            if not (0 <= src < self.n_gpus and 0 <= dst < self.n_gpus) or src == dst:
                raise ValueError(f"no route {src}->{dst} in a {self.n_gpus}-GPU topology")
            r = self._routes[key] = self._route(src, dst)
        return r

    def _route(self, src: int, dst: int) -> Route:
        raise NotImplementedError


TOPOLOGIES: Registry[type[Topology]] = Registry("topology")


def build_topology(hosts: int, gpus_per_host: int, config: NetworkConfig) -> Topology:
    return TOPOLOGIES.get(config.fabric.kind)(hosts, gpus_per_host, config)
