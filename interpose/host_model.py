"""How the script's own host time is scaled from the simulating machine to the target host.

Why: in ``measured`` mode the host clock advances by the script's CPU time between shim calls
(its Python, ``nn.Module`` calls, the autograd engine, the dispatcher above the shim), measured
here; the target host runs that work at its own speed. The two speeds are one benchmark each
(:func:`profiles.hostbench.host_bench_us`): the target's figure comes from the profile the
compute model replays (``phantora profile`` stores the recording host's figure in the header),
or from the rank config (the scenario's ``host.bench_us``); this machine's is measured once per
process (the parent measures it before forking ranks, so they share it). The ratio scales the
measured script time. The host costs a compute model replays (launch, first-call and framework
time, measured on the profiles' recording host) are scaled by ``target / recording`` when the
scenario names its host's figure (:func:`replayed_cost_scale`), and kept as recorded otherwise.

When no target figure is known the script time is counted at this machine's speed and the
result says so (``source``), never silently.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

NO_TARGET = "none: target host speed unknown, script time counted at this machine's speed"

SCRIPT_TIME_FIT = 0.6
"""Target-host script time per unit of benchmark-scaled local script time: what is measured here
also holds the shim's own per-op cost outside its entry points (FakeTensor subclass dispatch),
which no calibration isolates per op. Fitted on five H200 training configs (median of the per-config
values 0.20-0.70; docs/validation.md, "Host time (issue 19)"; ``benchmarks/host_time_validation.py
--script-fit``), under load; its spread is why ``measured`` is not the default. ``PHANTORA_SCRIPT_TIME_FIT`` overrides it for fitting; the
value used is in ``summary.json``'s ``host_model``."""


def script_time_fit() -> float:
    return float(os.environ.get("PHANTORA_SCRIPT_TIME_FIT", SCRIPT_TIME_FIT))


@dataclass(slots=True, frozen=True)
class HostScale:
    """Target-host time per unit of this machine's CPU time for the script's own work."""

    factor: float
    """``fit * target_bench_us / local_bench_us``."""
    fit: float
    target_bench_us: float | None
    local_bench_us: float | None
    source: str
    probe_ref_us: float | None = None
    """:func:`profiles.hostbench.python_probe_us` beside the local benchmark; the clock re-runs the
    probe during the run and divides script time by how much slower the machine is now."""
    """``config`` (the rank config / scenario), ``profile`` (the replayed profile's header) or :data:`NO_TARGET`."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replayed_cost_scale(target_bench_us: float | None, compute_model: Any) -> float:
    """Factor for the host costs a compute model replays (measured on its profiles' recording host):
    ``target / recording`` benchmark when the scenario names its host's figure, else 1."""
    recorded = getattr(compute_model, "host_bench_us", None)
    return target_bench_us / recorded if target_bench_us and recorded else 1.0


def host_scale(target_bench_us: float | None, compute_model: Any) -> HostScale:
    """The scale for a rank: ``target_bench_us`` (config) first, then the compute model's profile."""
    source = "config"
    if target_bench_us is None:
        target_bench_us = getattr(compute_model, "host_bench_us", None)
        source = "profile"
    if not target_bench_us:  # SCRIPT_TIME_FIT was fitted with a target figure; without one, count as is
        return HostScale(1.0, 1.0, None, None, NO_TARGET)
    fit = script_time_fit()
    from profiles.hostbench import host_bench_reference

    local, probe = host_bench_reference()
    return HostScale(fit * target_bench_us / local, fit, target_bench_us, round(local, 3), source, round(probe, 3))
