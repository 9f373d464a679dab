"""NCCL over RoCE/InfiniBand: each queue pair is one 5-tuple, ECMP-hashed onto one path."""

from __future__ import annotations

import numpy as np

from netsim.topologies.base import Route
from netsim.transports.base import TRANSPORTS, Transport, hashed_paths


@TRANSPORTS.register("single_path")
class SinglePath(Transport):
    """``qps_per_connection`` QPs (NCCL_IB_QPS_PER_CONNECTION, default 1) split a connection's
    bytes evenly; each QP is hashed with the seed onto one path, so connections collide."""

    name = "single_path"

    def __init__(self, *, qps_per_connection: int = 1, **kw) -> None:
        super().__init__(**kw)
        if qps_per_connection < 1:
            raise ValueError("qps_per_connection must be >= 1")
        self.qps = qps_per_connection

    def path_weights(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        return hashed_paths(self.seed, route, conn, self.qps)
