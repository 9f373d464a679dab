"""Host<->GPU copy times by size and kind, measured on the GPU's host, for the shim's host copies.

One bandwidth does not describe the host link: on the device tool's H200 host (2026-12-02,
``benchmarks/real/h2d_bandwidth.py``, shipped as ``profiles/data/h200/host_link.ndjson``) a pinned copy
runs at ~55 GB/s from 16 MiB up, a *pageable* host-to-device copy at 7-13 GB/s (the driver stages it
through a pinned buffer, and the host waits for it even with ``non_blocking=True``), and ``.to("cpu")``
into fresh pageable memory at 1.3-1.6 GB/s from 64 MiB up (first-touch page faults of the new buffer).

A pageable copy issued behind queued GPU work (a training loop's copy) is timed from curves measured
that way (rows with ``"context": "busy"``, ``h2d_bandwidth.py --context busy``: the copy queued behind
5 ms of ``torch.cuda._sleep``, timed from the end of that work): from 16 MiB up they run at 6.7-12.6 GB/s
where the same copy on an idle GPU reaches 13 GB/s (``non_blocking``), below 4 MiB somewhat faster
(the driver stages part of the copy while it waits). Pinned copies keep the idle curves: from 16 MiB
the two agree within 25%, and a pinned copy's busy time below that includes a ~50-70 us wait whose
place (host or stream) the measurement cannot tell.

Each measured variant (direction, pinned, non_blocking) is a table of host wall time per copy by size
(median of 15, CUDA-synchronized), interpolated log-log (past the largest size: its bandwidth). The
stream time of a copy is that time less the variant's per-call overhead: its 1 KiB time less the
~1 us a tiny copy takes on the GPU (kineto's Memcpy events for <= 8 KiB copies in the same call:
0.7-0.8 us), since the shim charges the launch and the host's op cost itself. Held-out check
(interpolating from the even powers of four, predicting the odd ones): docs/validation.md. A GPU
with no measurement gets the old assumption (50 GB/s + 8 us, pinned semantics), labelled ``assumed``.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
ASSUMED_GBPS = 50.0
"""Assumed host<->GPU bandwidth where nothing was measured (PCIe Gen5 x16, pinned), GB/s."""
ASSUMED_LATENCY_US = 8.0
"""Assumed fixed cost of one copy where nothing was measured."""
TINY_COPY_US = 1.0
"""GPU-side time of a <= 8 KiB copy (kineto Memcpy events, H200 host, 2026-12-02: 0.7-0.8 us)."""


@dataclass(frozen=True)
class CopyCost:
    stream_us: float
    """Time on the copy's stream."""
    blocks_host: bool
    """The host waits for the copy to finish (a blocking copy, or a pageable one the driver stages)."""


@dataclass
class _Curve:
    sizes: list[float] = field(default_factory=list)  # log bytes, ascending
    times: list[float] = field(default_factory=list)  # log us

    def at(self, nbytes: int) -> float:
        x = math.log(max(nbytes, 1))
        s, t = self.sizes, self.times
        if x <= s[0]:
            return math.exp(t[0])
        if x >= s[-1]:  # past the largest size: its bandwidth
            return math.exp(t[-1]) * nbytes / math.exp(s[-1])
        i = bisect.bisect_right(s, x)
        f = (x - s[i - 1]) / (s[i] - s[i - 1])
        return math.exp(t[i - 1] + f * (t[i] - t[i - 1]))


class HostLink:
    """Copy costs for one host: measured curves per (direction, pinned, non_blocking), or the assumption."""

    def __init__(self, rows: list[dict] | None = None, source: str = "assumed") -> None:
        self.source = source
        self._curves: dict[tuple[str, bool, bool], _Curve] = {}
        self._busy: dict[tuple[str, bool, bool], _Curve] = {}
        """Pageable copies issued behind queued GPU work (``context: busy`` rows)."""
        self._overhead: dict[tuple[str, bool, bool], float] = {}
        for r in sorted(rows or [], key=lambda r: r["bytes"]):
            ctx = r.get("context", "")
            if ctx not in ("", "busy"):
                continue  # other measured contexts (``fresh``) are kept in the file, not modelled
            table = self._busy if ctx == "busy" else self._curves
            c = table.setdefault((r["dir"], r["pinned"], r["non_blocking"]), _Curve())
            c.sizes.append(math.log(r["bytes"]))
            c.times.append(math.log(r["median_us"]))
        for k, c in self._curves.items():
            self._overhead[k] = max(0.0, math.exp(c.times[0]) - TINY_COPY_US)

    @property
    def measured(self) -> bool:
        return bool(self._curves)

    def cost(self, direction: str, nbytes: int, pinned: bool, non_blocking: bool, busy: bool = False) -> CopyCost:
        """``direction``: ``h2d`` or ``d2h``; ``pinned``: the host buffer is page-locked (for ``d2h``
        ``non_blocking`` copies PyTorch allocates a pinned destination itself: pass ``pinned=True``);
        ``busy``: the copy's stream still has work queued when it is issued (pageable copies then take the
        ``busy`` curve where one was measured)."""
        blocks = not non_blocking or not pinned  # a pageable copy is staged: the host waits for it
        if not self._curves:
            return CopyCost(ASSUMED_LATENCY_US + nbytes / (ASSUMED_GBPS * 1e3), blocks)
        key = (direction, pinned, non_blocking)
        curve = self._curves.get(key)
        if curve is None:
            raise ValueError(f"host link {self.source}: no measured curve for {direction}, "
                             f"{'pinned' if pinned else 'pageable'}, non_blocking={non_blocking}")
        if busy and not pinned and (bc := self._busy.get(key)) is not None and math.log(max(nbytes, 1)) >= bc.sizes[0]:
            curve = bc  # below the busy curve's smallest size (64 KiB) the idle one stays
        return CopyCost(max(TINY_COPY_US, curve.at(nbytes) - self._overhead[key]), blocks)


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@cache
def host_link(gpu_key: str) -> HostLink:
    """The shipped measurement for a GPU's host (``profiles/data/<gpu>/host_link.ndjson``), else the assumption."""
    path = DATA_DIR / gpu_key / "host_link.ndjson"
    if not path.exists():
        return HostLink()
    return HostLink(load_rows(path), source=f"measured ({path.relative_to(DATA_DIR.parent.parent)})")
