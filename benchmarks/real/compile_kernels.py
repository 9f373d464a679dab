"""Record the GPU time of every Triton kernel a compiled program launches, keyed as the simulator keys it.

Runs on the GPU machine (torch + Triton there). ``Recorder`` wraps Inductor's
``CachingAutotuner.run`` to note each launch's key (``profiles.families.triton.launch_key``: the kernel
name without its index, loop sizes, pointer dtypes) and bytes moved; a ``torch.profiler`` window
gives the kernels' GPU durations (CUPTI), matched to the noted launches in issue order by name.

As a program wrapper: ``python3 compile_kernels.py OUT.jsonl SPLIT FIRST_STEP N_STEPS SCRIPT ARGS...``
runs SCRIPT as ``__main__`` and records optimizer steps FIRST_STEP .. FIRST_STEP+N_STEPS-1 (a global
optimizer-step hook opens and closes the window).
"""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import torch
import torch.optim.optimizer  # the submodule is not an attribute of torch.optim until imported (torch 2.11)

_spec = importlib.util.spec_from_file_location(
    "phantora_triton_keys", Path(__file__).resolve().parents[2] / "profiles" / "families" / "triton.py")
keys = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["phantora_triton_keys"] = keys
_spec.loader.exec_module(keys)  # type: ignore[union-attr]


def _params(autotuner) -> list[tuple[str, str]]:
    cached = getattr(autotuner, "_phantora_params", None)
    if cached is None:
        sig = autotuner.triton_meta.get("signature", {})
        names = list(getattr(autotuner.fn, "arg_names", None) or sig)
        cached = [(n, sig.get(n, "constexpr")) for n in names if sig.get(n, "constexpr") != "constexpr"]
        autotuner._phantora_params = cached
    return cached


class Recorder:
    """Launch notes plus a profiler window; :meth:`rows` matches them (see module docstring)."""

    def __init__(self, split: str, tag: str) -> None:
        from torch._inductor.runtime.triton_heuristics import CachingAutotuner

        self.split, self.tag = split, tag
        self.launches: list[tuple[str, str, int]] = []
        self.recording = False
        self.prof: Any = None
        self.out: list[dict] = []
        orig = CachingAutotuner.run
        rec = self

        def run(self, *args, stream, **kwargs):
            if rec.recording:
                name = self.inductor_meta.get("kernel_name") or self.fn.__name__
                key, nbytes = keys.launch_key(name, _params(self), args)
                rec.launches.append((name, key, nbytes))
            return orig(self, *args, stream=stream, **kwargs)

        CachingAutotuner.run = run  # type: ignore[method-assign]

    def start(self) -> None:
        torch.cuda.synchronize()
        self.launches = []
        self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
        self.prof.start()
        self.recording = True

    def stop(self) -> None:
        torch.cuda.synchronize()
        self.recording = False
        self.prof.stop()
        events = self.prof.profiler.kineto_results.events()
        kernels = sorted(((e.name(), e.start_ns(), e.duration_ns()) for e in events
                          if e.name().startswith("triton_") and "CUDA" in str(e.device_type())), key=lambda k: k[1])
        i = 0
        for name, key, nbytes in self.launches:
            while i < len(kernels) and kernels[i][0] != name:
                i += 1
            if i == len(kernels):
                break
            self.out.append({"key": key, "kernel": name, "bytes": nbytes, "us": kernels[i][2] / 1e3,
                             "split": self.split, "program": self.tag})
            i += 1
        print(f"compile_kernels: {len(self.launches)} launches, {len(kernels)} kernels, "
              f"{len(self.out)} rows ({self.tag})", flush=True)

    def write(self, path: str) -> None:
        with open(path, "a") as f:
            for r in self.out:
                f.write(json.dumps(r) + "\n")


def main() -> None:
    out, split, first, n, script, *argv = sys.argv[1:]
    rec = Recorder(split, Path(script).stem + " " + " ".join(argv))
    first_step, last_step = int(first), int(first) + int(n)
    count = [0]

    def post(opt, args, kwargs):
        count[0] += 1
        if count[0] == first_step:
            rec.start()
        elif count[0] == last_step:
            rec.stop()

    torch.optim.optimizer.register_optimizer_step_post_hook(post)  # global hook (module-level function)
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")
    if rec.recording:
        rec.stop()
    rec.write(out)


if __name__ == "__main__":
    main()
