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

import contextlib
import itertools
import json
import os
import runpy
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook


def run_target(module: bool, target: str) -> None:
    if module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")


@contextlib.contextmanager
def host_profiles(cprofile: str, kineto: str, ends: list[float], cp: Any = None) -> Iterator[None]:
    """Optionally profile the run: ``cProfile`` (where the host's Python goes; ``cp``, which the step hook
    enables once the warm-up steps are done, so imports and set-up are left out) and/or the torch profiler
    (GPU kernels, copies and syncs), summarised by ``host_profile_summary`` into small text/JSON files.
    For attributing a real run's gaps on the GPU; both slow the run, so their steps are not timed ones."""
    stack = contextlib.ExitStack()
    prof = None
    if kineto:
        from torch.profiler import ProfilerActivity, profile

        prof = stack.enter_context(profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]))
    try:
        with stack:
            yield
            if cp is not None:
                cp.disable()
    finally:
        if int(os.environ.get("RANK", "0")) == 0:
            if cp is not None:
                from host_profile_summary import write_cprofile

                write_cprofile(cp, cprofile)
            if prof is not None:
                from host_profile_summary import write_kineto

                write_kineto(prof, kineto, ends)


def main() -> None:
    argv = sys.argv[1:]
    opts = {"--name": "run", "--warmup": "2", "--cprofile": "", "--kineto": ""}
    while argv and argv[0] in opts:
        opts[argv[0]] = argv[1]
        argv = argv[2:]
    name, warmup = opts["--name"], int(opts["--warmup"])
    module = argv[0] == "-m"
    target = argv[1] if module else argv[0]
    rest = argv[2:] if module else argv[1:]
    ends: list[float] = []
    depth = [0]
    cp = None
    if opts["--cprofile"]:
        import cProfile

        cp = cProfile.Profile()

    def pre(opt, args, kwargs) -> None:
        depth[0] += 1

    def post(opt, args, kwargs) -> None:
        depth[0] -= 1
        if depth[0] == 0:
            torch.cuda.synchronize()
            ends.append(time.perf_counter())
            if opts["--kineto"]:
                with torch.profiler.record_function("##phantora_step_end##"):
                    pass
            if cp is not None and len(ends) == warmup:
                cp.enable()  # the steady steps only

    register_optimizer_step_pre_hook(pre)
    register_optimizer_step_post_hook(post)
    sys.argv = [target, *rest]
    t0 = time.perf_counter()
    try:
        with host_profiles(opts["--cprofile"], opts["--kineto"], ends, cp):
            run_target(module, target)
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
