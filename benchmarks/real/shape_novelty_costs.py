"""Host cost of an op on a shape it has not seen before, against the same shape again, on a GPU host
(issues 14/19: eager MoE experts get a new token count almost every call on a GPU).

The eager-expert MoE's recorded profile holds 1,698 distinct ``mm`` signatures in 10 steps, each with a
first-call cost of ~277 us against ~21 us steady (cuBLAS's per-shape heuristics); a simulation whose
routing repeats its counts pays that once. Which ops pay what for a new shape decides how to model it.
For each op, ``N`` calls on ``N`` distinct row counts (first sight of each shape), then the same shapes
again (seen), host time per call (``perf_counter`` around the call, GPU work tiny so the launch queue
never fills). Prints one JSON line per op: median µs novel / seen::

    python3 benchmarks/real/shape_novelty_costs.py > novelty.jsonl
"""

from __future__ import annotations

import json
import random
import statistics
import time

import torch

N = 150


def main() -> None:
    dev, bf = "cuda", torch.bfloat16
    w = torch.randn(512, 1024, device=dev, dtype=bf)
    big = torch.randn(4096, 512, device=dev, dtype=bf)
    rows = random.Random(0).sample(range(600, 3000), 2 * N)
    ops = {
        "mm": lambda n, x, i: x @ w,
        "mul": lambda n, x, i: x * 2.0,
        "silu": lambda n, x, i: torch.nn.functional.silu(x),
        "index_select": lambda n, x, i: big.index_select(0, i),
        "index": lambda n, x, i: big[i],
        "index_add_": lambda n, x, i: torch.zeros_like(big).index_add_(0, i, x),
        "index_put_acc": lambda n, x, i: torch.zeros_like(big).index_put_((i,), x, accumulate=True),
        "sum_dim0": lambda n, x, i: x.sum(0),
        "cat": lambda n, x, i: torch.cat([x, x]),
        "to_float": lambda n, x, i: x.float(),
    }
    print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "n": N}), flush=True)
    for name, fn in ops.items():
        shapes = rows[:N] if name != "mm" else rows[N:]  # mm on counts no other op used (cuBLAS caches per shape)
        inputs = [(n, torch.randn(n, 512, device=dev, dtype=bf), torch.randint(0, 4096, (n,), device=dev))
                  for n in shapes]  # fmt: skip
        torch.cuda.synchronize()
        fn(*inputs[0])  # the op's own first call (kernel load) out of the way
        torch.cuda.synchronize()
        novel, seen = [], []
        for args in inputs[1:]:
            t0 = time.perf_counter()
            fn(*args)
            novel.append((time.perf_counter() - t0) * 1e6)
            torch.cuda.synchronize()
        for args in inputs[1:]:
            t0 = time.perf_counter()
            fn(*args)
            seen.append((time.perf_counter() - t0) * 1e6)
            torch.cuda.synchronize()
        print(json.dumps({"op": name, "novel_us": round(statistics.median(novel), 2),
                          "seen_us": round(statistics.median(seen), 2),
                          "novel_p90_us": round(sorted(novel)[int(0.9 * len(novel))], 2)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
