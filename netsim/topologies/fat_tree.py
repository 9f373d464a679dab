"""Three-tier fat-tree: pods of leaf-spine (leaf + aggregation tier) under a core layer.

Inside a pod this is :class:`LeafSpine` (``spines`` aggregation switches per pod, leaf
oversubscription ``oversubscription``). Each pod has ``S * Ua`` core uplinks (and as many
downlinks), ``Ua = ceil(leaves_per_pod * U / core_oversubscription / S)`` per aggregation
switch, pod link ``k`` leaving aggregation switch ``k % S`` for core ``k % cores``. Every
pod is wired alike, so pod link ``k`` of any two pods meets at the same core.

A cross-pod path is (leaf uplink ``j``, pod uplink ``k`` of aggregation switch ``j % S``,
the destination pod's downlink ``k``, one of the destination leaf's downlinks from
aggregation switch ``k % S``): ``U * Ua * U/S`` equal-cost paths, ECMP at both tiers. The
core's choice of downlink is taken as the mirror of the uplink (same ``k``), which keeps the
path count bounded but correlates the two core hops.
"""

from __future__ import annotations

import math

import numpy as np

from netsim.config import NetworkConfig
from netsim.topologies.base import TOPOLOGIES, Route
from netsim.topologies.leaf_spine import LeafSpine


@TOPOLOGIES.register("fat_tree")
class FatTree(LeafSpine):
    def __init__(self, hosts: int, gpus_per_host: int, config: NetworkConfig) -> None:
        super().__init__(hosts, gpus_per_host, config)
        fab = config.fabric
        self.leaves_per_pod = fab.leaves_per_pod
        self.n_pods = math.ceil(self.n_leaves / fab.leaves_per_pod)
        self.cores = fab.cores
        leaf_uplinks_per_pod = fab.leaves_per_pod * self.uplinks
        self.agg_uplinks = max(1, math.ceil(leaf_uplinks_per_pod / fab.core_oversubscription / self.spines - 1e-9))
        self.pod_uplinks = self.agg_uplinks * self.spines
        link_gbps = fab.link_gbit / 8.0
        self.pod_up = self._add_links(
            [f"pod{p}_up{k}" for p in range(self.n_pods) for k in range(self.pod_uplinks)], link_gbps
        ).reshape(self.n_pods, self.pod_uplinks)
        self.pod_down = self._add_links(
            [f"pod{p}_dn{k}" for p in range(self.n_pods) for k in range(self.pod_uplinks)], link_gbps
        ).reshape(self.n_pods, self.pod_uplinks)
        # cross-pod path (j, i, m): leaf uplink j -> agg s=j%S -> pod link k=s+S*i -> same k down
        # -> agg s -> leaf downlink s + S*m
        s_of_j = np.arange(self.uplinks) % self.spines
        j, i, m = (a.reshape(-1) for a in np.meshgrid(np.arange(self.uplinks), np.arange(self.agg_uplinks),
                                                       np.arange(self.parallel), indexing="ij"))
        self._x_up = j
        self._x_pod = s_of_j[j] + self.spines * i
        self._x_down = np.minimum(s_of_j[j] + self.spines * m, self.uplinks - 1)
        self._x_cache: dict[tuple[int, int], np.ndarray] = {}

    def pod_of_leaf(self, leaf: int) -> int:
        return leaf // self.leaves_per_pod

    def _route(self, src: int, dst: int) -> Route:
        r = super()._route(src, dst)
        a, b = r.src_group, r.dst_group
        if a < 0 or a == b or self.pod_of_leaf(a) == self.pod_of_leaf(b):
            return r
        choices = self._x_cache.get((a, b))
        if choices is None:
            pa, pb = self.pod_of_leaf(a), self.pod_of_leaf(b)
            choices = self._x_cache[(a, b)] = np.stack(
                [self.leaf_up[a, self._x_up], self.pod_up[pa, self._x_pod],
                 self.pod_down[pb, self._x_pod], self.leaf_down[b, self._x_down]], axis=1)
        return Route(r.fixed, choices, r.latency_ns + 2 * self.config.fabric.hop_latency_ns, a, b)
