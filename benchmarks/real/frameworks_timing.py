"""Run a framework's launcher (a script, or ``-m module``) unchanged and print its ms/iter and peak
memory as one JSON line, the same way on a GPU and under ``phantora run``.

An iteration ends at each outermost ``Optimizer.step`` (an optimizer whose step runs others', e.g.
TorchTitan's ``OptimizersContainer``, counts once; DeepSpeed's and Megatron's wrappers are not
``torch.optim.Optimizer`` s and step one inner torch optimizer), after ``torch.cuda.synchronize()``,
so the figure is the program's own wall time per step. Under phantora ``time.perf_counter`` and the
memory counters are the simulated ones.

    torchrun --standalone --nproc-per-node 1 benchmarks/real/frameworks_timing.py --name ds2 \\
        examples/frameworks/deepspeed/train.py --zero-stage 2
    phantora run --scenario scenarios/h200x1.yaml benchmarks/real/frameworks_timing.py --name ds2 \\
        examples/frameworks/deepspeed/train.py --zero-stage 2
"""

from __future__ import annotations

import itertools
import json
import os
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook


def main() -> None:
    argv = sys.argv[1:]
    name, warmup = "run", 2
    while argv and argv[0] in ("--name", "--warmup"):
        if argv[0] == "--name":
            name = argv[1]
        else:
            warmup = int(argv[1])
        argv = argv[2:]
    module = argv[0] == "-m"
    target = argv[1] if module else argv[0]
    rest = argv[2:] if module else argv[1:]
    ends: list[float] = []
    depth = [0]

    def pre(opt, args, kwargs) -> None:
        depth[0] += 1

    def post(opt, args, kwargs) -> None:
        depth[0] -= 1
        if depth[0] == 0:
            torch.cuda.synchronize()
            ends.append(time.perf_counter())

    register_optimizer_step_pre_hook(pre)
    register_optimizer_step_post_hook(post)
    sys.argv = [target, *rest]
    t0 = time.perf_counter()
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            runpy.run_path(target, run_name="__main__")
    finally:
        if int(os.environ.get("RANK", "0")) == 0:
            marks = [t0, *ends]
            step_ms = [round((b - a) * 1e3, 4) for a, b in itertools.pairwise(marks)]
            timed = step_ms[warmup:]
            print(json.dumps({
                "harness": name, "steps": len(step_ms), "step_ms": step_ms,
                "mean_ms": round(sum(timed) / len(timed), 4) if timed else None,
                "max_memory_allocated": torch.cuda.max_memory_allocated(),
                "max_memory_reserved": torch.cuda.max_memory_reserved(),
                "torch": torch.__version__,
            }), flush=True)


if __name__ == "__main__":
    main()
