"""Each ``torch.cuda`` call the shim answers costs the host what it costs on the GPU's host.

Why: the replacements (:mod:`interpose.cuda_api`, :mod:`interpose.cuda_streams`) answer from the
simulated GPU in well under a microsecond, while a GPU host pays Python plus a CUDA runtime call per call
(:mod:`profiles.host_api`: 6.9 us per ``current_stream``, 8.8 us per ``Event.record``, 135 us per
``memory_allocated`` on the H200 host). Programs that call them hundreds of times a step (DeepSpeed,
FSDP) were simulated as if those calls were free. The outermost call made from the script (not one the
shim makes itself, not one nested in another charged call: ``wait_stream`` records an event) advances
the host clock by the measured cost once it returns (after a ``synchronize``'s wait: the wake-up); the
replacement's own time on this machine is the shim's, not the script's.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from profiles.host_api import host_api_costs

if TYPE_CHECKING:
    from collections.abc import Callable

    from interpose.clock import VirtualClock
    from interpose.patching import Patcher
    from interpose.runtime import RankRuntime

_active = [0]
"""Charged calls running now (a nested one is part of its caller's measured cost)."""

METHODS = {  # measured name -> (class name in interpose.cuda_streams, attribute)
    "Event": ("Event", "__init__"),
    "Event.record": ("Event", "record"),
    "Event.query": ("Event", "query"),
    "Event.synchronize": ("Event", "synchronize"),
    "Stream": ("Stream", "__init__"),
    "Stream.wait_stream": ("Stream", "wait_stream"),
    "Stream.wait_event": ("Stream", "wait_event"),
    "Stream.record_event": ("Stream", "record_event"),
    "Stream.synchronize": ("Stream", "synchronize"),
}
PAIRS = {"nvtx.range_push+range_pop": ("range_push", "range_pop")}
"""Measured as a pair; each half is charged half."""


def charged(clock: VirtualClock, cost_us: float, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` charging ``cost_us`` of host time per outermost call from the script's main thread (a loader's
    pin-memory thread runs beside the script on a GPU host, not in its time)."""
    main = threading.main_thread().ident
    get_ident = threading.get_ident

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _active[0] or clock.depth or get_ident() != main:
            return fn(*args, **kwargs)
        _active[0] += 1
        clock.enter_callback()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.host_us += cost_us
            clock.leave()
            _active[0] -= 1

    return run


def costs_for(rt: RankRuntime) -> dict[str, float]:
    """The scenario GPU host's per-call costs, scaled to the named target host; noted in ``host_model``."""
    table = host_api_costs(rt.cfg.gpu.key)
    rt.host_model["host_api"] = table.source
    return table.scaled(rt.cfg.host_bench_us)


def wrap_functions(repl: dict[str, Any], costs: dict[str, float], clock: VirtualClock) -> None:
    """Charge the module-level ``torch.cuda`` replacements (``current_stream``, ``synchronize``, ...)."""
    for name, us in costs.items():
        if name in repl and name not in METHODS:
            repl[name] = charged(clock, us, repl[name])


def install_methods(p: Patcher, nvtx: Any, costs: dict[str, float], clock: VirtualClock) -> None:
    """Charge the simulated ``Stream``/``Event`` methods and the nvtx range calls."""
    from interpose import cuda_streams

    for name, (cls_name, attr) in METHODS.items():
        if name in costs:
            cls = getattr(cuda_streams, cls_name)
            p.set(cls, attr, charged(clock, costs[name], getattr(cls, attr)))
    for name, attrs in PAIRS.items():
        if name in costs:
            for attr in attrs:
                p.set(nvtx, attr, charged(clock, costs[name] / len(attrs), getattr(nvtx, attr)))
