"""Perfect spraying: every connection uses every path equally (the upper bound)."""

from __future__ import annotations

import numpy as np

from netsim.topologies.base import Route
from netsim.transports.base import TRANSPORTS, Transport


@TRANSPORTS.register("ideal")
class Ideal(Transport):
    name = "ideal"

    def path_weights(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        p = route.n_paths
        return np.arange(p), np.full(p, 1.0 / p)
