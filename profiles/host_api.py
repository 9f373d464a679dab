"""Host cost of the ``torch.cuda`` calls a program makes between ops, measured on the GPU's host.

Why: the shim answers ``torch.cuda.current_stream()``, ``Event.record()``, ``memory_allocated()`` and the
like from the simulated GPU for nothing, but a GPU host pays Python (device-index resolution through
``is_available``) plus a CUDA runtime call for each: 6.9 us per ``current_stream``, 8.8 us per
``Event.record``, 14.9 us per ``with torch.cuda.stream(s)``, 135 us per ``memory_allocated`` (it builds
the allocator's whole stats dict) on the device tool's H200 host (2026-12-03,
``benchmarks/real/cuda_api_costs.py``, shipped as ``profiles/data/h200/host_api.ndjson``). Frameworks call
them hundreds of times a step (DeepSpeed ZeRO-3: ~470 ``current_stream``, 166 ``Event.record``, 121
``wait_stream`` per step of the frameworks config). Each cost is the median µs per call of a loop on an
idle GPU; the first line's ``host_bench_us`` is that host's :mod:`profiles.hostbench` figure, by which the
costs are scaled to a scenario that names its host's (as every replayed host cost is). A GPU with no
measurement charges nothing and says so (``summary.json`` ``host_model.host_api``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from profiles.host_link import DATA_DIR, load_rows


@dataclass(frozen=True, slots=True)
class HostApiCosts:
    us: dict[str, float] = field(default_factory=dict)
    """Per API name (``current_stream``, ``Event.record``, ...): host µs per call on the recording host."""
    host_bench_us: float | None = None
    source: str = "none: no torch.cuda call costs recorded for this GPU's host, charged 0"

    def scaled(self, target_bench_us: float | None) -> dict[str, float]:
        """The costs on a target host named by its benchmark figure (as recorded without one)."""
        k = target_bench_us / self.host_bench_us if target_bench_us and self.host_bench_us else 1.0
        return {name: us * k for name, us in self.us.items()}


@cache
def host_api_costs(gpu_key: str) -> HostApiCosts:
    path = DATA_DIR / gpu_key / "host_api.ndjson"
    if not path.exists():
        return HostApiCosts()
    rows = load_rows(path)
    bench = next((float(r["host_bench_us"]) for r in rows if "host_bench_us" in r), None)
    us = {r["api"]: float(r["us"]) for r in rows if "api" in r}
    return HostApiCosts(us, bench, f"measured ({path.relative_to(DATA_DIR.parent.parent)})")


NOVELTY_OPS = {"mm": "aten.mm.default"}
"""``shape_novelty_costs.py`` labels of the ops with per-shape plans, and their overloads. Its other rows
(elementwise, indexing, reductions, copies) showed no premium for a new shape."""


@cache
def new_shape_us(gpu_key: str) -> dict[str, float]:
    """Per op: host µs a new shape costs in a warm process beyond a seen one (the shape-plan premium),
    measured on the GPU host (``data/<gpu>/shape_novelty.ndjson``, ``benchmarks/real/shape_novelty_costs.py``)."""
    path = DATA_DIR / gpu_key / "shape_novelty.ndjson"
    if not path.exists():
        return {}
    rows = load_rows(path)
    return {NOVELTY_OPS[r["op"]]: max(0.0, r["novel_us"] - r["seen_us"]) for r in rows if r.get("op") in NOVELTY_OPS}
