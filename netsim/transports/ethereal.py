"""Few assigned paths ("Challenging the Need for Packet Spraying", arXiv 2407.00550).

Single-path transport, but the sender splits each connection into ``splits`` sub-flows and
assigns each to the least-used path between its two leaves (counting what this transport
assigned before), so equal-size collective flows land on distinct paths without spraying.
"""

from __future__ import annotations

import numpy as np

from netsim.topologies.base import Route
from netsim.transports.base import TRANSPORTS, Transport


@TRANSPORTS.register("ethereal")
class Ethereal(Transport):
    name = "ethereal"

    def __init__(self, *, splits: int = 1, **kw) -> None:
        super().__init__(**kw)
        if splits < 1:
            raise ValueError("splits must be >= 1")
        self.splits = splits
        self._up_load: dict[int, np.ndarray] = {}
        self._down_load: dict[int, np.ndarray] = {}

    def path_weights(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        up, down = route.choices[:, 0], route.choices[:, -1]
        ul = self._up_load.setdefault(route.src_group, np.zeros(int(up.max()) + 1))
        dl = self._down_load.setdefault(-1 - route.dst_group, np.zeros(int(down.max()) + 1))
        picked = []
        for _ in range(self.splits):
            # least-loaded (uplink, downlink) pair; ties broken by path index (deterministic)
            p = int(np.argmin(ul[up] + dl[down] + np.arange(len(up)) * 1e-9))
            ul[up[p]] += 1
            dl[down[p]] += 1
            picked.append(p)
        paths, counts = np.unique(np.array(picked), return_counts=True)
        return paths, counts / self.splits
