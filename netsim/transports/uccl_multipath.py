"""UCCL multipath: each connection sprays its chunks over K QPs, each its own ECMP hash."""

from __future__ import annotations

import numpy as np

from netsim.topologies.base import Route
from netsim.transports.base import TRANSPORTS, Transport, hashed_paths


@TRANSPORTS.register("uccl_multipath")
class UcclMultipath(Transport):
    """``paths`` QPs per connection (256 in UCCL's design), each hashed onto a fabric path;
    chunks go round the QPs, so each path carries ``(QPs hashed to it) / paths`` of the bytes.

    Oblivious spraying: UCCL's power-of-two-choices path selection would also steer
    around paths made slow by *other* traffic; this model keeps the static share, which
    is already near-even for K >> fabric paths.
    """

    name = "uccl_multipath"

    def __init__(self, *, paths: int = 256, chunk_bytes: int = 65536, **kw) -> None:
        super().__init__(chunk_bytes=chunk_bytes, **kw)
        if paths < 1:
            raise ValueError("paths must be >= 1")
        self.k = paths

    def path_weights(self, route: Route, conn: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        return hashed_paths(self.seed, route, conn, self.k)
