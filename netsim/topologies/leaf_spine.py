"""Two-tier leaf-spine: NVLink inside hosts, NICs to leaves, leaves to every spine.

Each leaf gets ``U = ceil(NIC capacity below it / oversubscription / link rate)`` uplinks
(and as many downlinks back), uplink ``j`` going to spine ``j % spines``. A path between
two leaves is (uplink ``j`` of the source leaf, one of the downlinks from spine
``j % spines`` to the destination leaf), so there are ``U * U/spines`` ECMP paths.
"""

from __future__ import annotations

import math

import numpy as np

from netsim.config import NetworkConfig
from netsim.topologies.base import TOPOLOGIES, Route, Topology


@TOPOLOGIES.register("leaf_spine")
class LeafSpine(Topology):
    def __init__(self, hosts: int, gpus_per_host: int, config: NetworkConfig) -> None:
        super().__init__(hosts, gpus_per_host, config)
        ih, nic, fab = config.intra_host, config.nic, config.fabric
        g = self.n_gpus
        self.nvl_up = self._add_links([f"nvl_up{i}" for i in range(g)], ih.nvlink_gbps_per_direction, True)
        self.nvl_down = self._add_links([f"nvl_dn{i}" for i in range(g)], ih.nvlink_gbps_per_direction, True)
        self.nics_per_host = gpus_per_host if nic.per_gpu else nic.nics_per_host
        n_nics = hosts * self.nics_per_host
        nic_gbps = nic.gbit / 8.0
        self.nic_up = self._add_links([f"nic_up{i}" for i in range(n_nics)], nic_gbps)
        self.nic_down = self._add_links([f"nic_dn{i}" for i in range(n_nics)], nic_gbps)
        self.pcie_up: np.ndarray | None = None
        self.pcie_down: np.ndarray | None = None
        if not nic.per_gpu:  # GPUs share a NIC over PCIe
            self.pcie_up = self._add_links([f"pcie_up{i}" for i in range(g)], ih.pcie_gbps)
            self.pcie_down = self._add_links([f"pcie_dn{i}" for i in range(g)], ih.pcie_gbps)
        hpl = fab.hosts_per_leaf
        groups = math.ceil(hosts / hpl)
        self.n_leaves = groups * self.nics_per_host if fab.rail_optimized else groups
        nics_per_leaf = hpl if fab.rail_optimized else hpl * self.nics_per_host
        link_gbps = fab.link_gbit / 8.0
        self.uplinks = max(1, math.ceil(nics_per_leaf * nic_gbps / fab.oversubscription / link_gbps - 1e-9))
        self.spines = min(fab.spines, self.uplinks)
        self.parallel = max(1, self.uplinks // self.spines)
        self.leaf_up = self._add_links(
            [f"leaf{a}_up{j}" for a in range(self.n_leaves) for j in range(self.uplinks)], link_gbps
        ).reshape(self.n_leaves, self.uplinks)
        self.leaf_down = self._add_links(
            [f"leaf{a}_dn{j}" for a in range(self.n_leaves) for j in range(self.uplinks)], link_gbps
        ).reshape(self.n_leaves, self.uplinks)
        # ECMP path p = (uplink j, downlink spine(j) + spines*m)
        j = np.repeat(np.arange(self.uplinks), self.parallel)
        m = np.tile(np.arange(self.parallel), self.uplinks)
        self._path_up = j
        self._path_down = np.minimum(j % self.spines + self.spines * m, self.uplinks - 1)
        self._choices: dict[tuple[int, int], np.ndarray] = {}

    def nic_of(self, gpu: int) -> int:
        host, local = divmod(gpu, self.gpus_per_host)
        return host * self.nics_per_host + local % self.nics_per_host

    def leaf_of(self, gpu: int) -> int:
        host, local = divmod(gpu, self.gpus_per_host)
        group = host // self.config.fabric.hosts_per_leaf
        if self.config.fabric.rail_optimized:
            return group * self.nics_per_host + local % self.nics_per_host
        return group

    def _route(self, src: int, dst: int) -> Route:
        cfg = self.config
        empty = np.zeros((0, 2), dtype=np.int64)
        if self.host_of(src) == self.host_of(dst):
            fixed = np.array([self.nvl_up[src], self.nvl_down[dst]])
            return Route(fixed, empty, cfg.intra_host.nvlink_latency_ns, -1, -1)
        nic_links = [self.nic_up[self.nic_of(src)], self.nic_down[self.nic_of(dst)]]
        if self.pcie_up is not None and self.pcie_down is not None:
            nic_links += [self.pcie_up[src], self.pcie_down[dst]]
        fixed = np.array(nic_links)
        a, b = self.leaf_of(src), self.leaf_of(dst)
        lat = 2 * cfg.nic.latency_ns
        if a == b:
            return Route(fixed, empty, lat + cfg.fabric.hop_latency_ns, a, b)
        choices = self._choices.get((a, b))
        if choices is None:  # one array per leaf pair, shared by its routes (never written)
            choices = self._choices[(a, b)] = np.stack(
                [self.leaf_up[a, self._path_up], self.leaf_down[b, self._path_down]], axis=1)
        return Route(fixed, choices, lat + 3 * cfg.fabric.hop_latency_ns, a, b)
