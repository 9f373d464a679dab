"""``torch.cuda`` CUDA graphs: capture records kernels, replay queues them behind one launch."""

from __future__ import annotations

import itertools
from typing import Any

from interpose.runtime import current

GRAPH_LAUNCH_US = 5.0
"""Host cost charged for one ``cudaGraphLaunch`` (the whole graph): an assumed value, not measured here."""


class CUDAGraph:
    """``torch.cuda.CUDAGraph`` on the simulated GPU.

    Capture runs the captured code on fake tensors (shapes and memory as usual) but its kernels
    are recorded, not run: the host pays their launch costs, the GPU nothing. ``replay()`` queues
    the recorded kernels on the current stream behind a single graph launch, which is the point
    of CUDA graphs (one launch instead of one per kernel).
    """

    _pools = itertools.count(1)

    def __init__(self, keep_graph: bool = False) -> None:
        self.kernels: list[tuple[str, str, str, float, str]] = []
        self._pool = (next(self._pools), 0)

    def capture_begin(self, pool: Any = None, capture_error_mode: str = "global", **_: Any) -> None:
        rt = current()
        if rt.capture is not None:
            raise RuntimeError("CUDA graph capture already in progress")
        rt.capture = []

    def capture_end(self) -> None:
        rt = current()
        self.kernels, rt.capture = rt.capture or [], None

    def replay(self) -> None:
        rt = current()
        rt.clock.host_us += GRAPH_LAUNCH_US
        for name, shapes, dtype, dur, source in self.kernels:
            rt.launch(name, shapes, dtype, dur, 0.0, source)

    def instantiate(self) -> None:
        return None

    def reset(self) -> None:
        self.kernels = []

    def pool(self) -> tuple[int, int]:
        return self._pool

    def enable_debug_mode(self) -> None:
        return None

    def debug_dump(self, debug_path: str) -> None:
        return None


def graph_pool_handle() -> tuple[int, int]:
    return (next(CUDAGraph._pools), 0)


def is_current_stream_capturing() -> bool:
    return current().capture is not None
