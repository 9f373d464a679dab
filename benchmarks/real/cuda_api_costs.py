"""Host cost of the ``torch.cuda`` calls programs make between ops, measured on a GPU host (issues 19/20).

The shim answers these from the simulated GPU at almost no cost, but on a GPU host each is Python (device-index
resolution, ``is_available`` checks) plus a CUDA runtime call: DeepSpeed ZeRO-3 makes ~470
``current_stream`` calls a step. Each call is timed in a loop of ``N`` after a warm-up, the median of
``REPS`` loops, with the GPU idle (a loop of synchronising calls on a busy GPU would time the GPU instead).
Prints one JSON line per call: ``{"api": "current_stream", "us": ...}`` and a header line with the
machine's ``profiles.hostbench`` figure (the replayed costs are scaled by it like every host cost)::

    python3 benchmarks/real/cuda_api_costs.py > host_api.ndjson
"""

from __future__ import annotations

import json
import statistics
import time

import torch

N, REPS = 2000, 7


def main() -> None:
    from profiles.hostbench import host_bench_us

    c = torch.cuda
    torch.ones(1, device="cuda")
    s, s2, e = c.Stream(), c.Stream(), c.Event()
    e.record()
    c.synchronize()

    def stream_ctx() -> None:
        with c.stream(s):
            pass

    def nvtx() -> None:
        c.nvtx.range_push("x")
        c.nvtx.range_pop()

    calls = {
        "current_stream": c.current_stream,
        "default_stream": c.default_stream,
        "current_device": c.current_device,
        "is_available": c.is_available,
        "device_count": c.device_count,
        "synchronize": c.synchronize,
        "Event": c.Event,
        "Event.record": e.record,
        "Event.query": e.query,
        "Event.synchronize": e.synchronize,
        "Stream": c.Stream,
        "Stream.wait_stream": lambda: s.wait_stream(s2),
        "Stream.wait_event": lambda: s.wait_event(e),
        "Stream.record_event": s.record_event,
        "Stream.synchronize": s.synchronize,
        "stream": stream_ctx,
        "nvtx.range_push+range_pop": nvtx,
        "memory_allocated": c.memory_allocated,
        "max_memory_allocated": c.max_memory_allocated,
        "memory_reserved": c.memory_reserved,
        "get_device_properties": lambda: c.get_device_properties(0),
    }
    print(json.dumps({"host_bench_us": round(host_bench_us(), 1), "torch": torch.__version__,
                      "gpu": c.get_device_name(0), "n": N, "reps": REPS}), flush=True)  # fmt: skip
    for name, fn in calls.items():
        for _ in range(200):
            fn()
        per = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            for _ in range(N):
                fn()
            per.append((time.perf_counter() - t0) / N * 1e6)
        c.synchronize()
        print(json.dumps({"api": name, "us": round(statistics.median(per), 3),
                          "min_us": round(min(per), 3), "max_us": round(max(per), 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
