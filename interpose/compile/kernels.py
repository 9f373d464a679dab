"""Inductor's Triton kernels as simulated kernels.

``AsyncCompile.triton(name, source)`` is where Inductor hands a generated kernel to Triton to be
compiled for the GPU. Under the shim it returns a :class:`SimTritonKernel` instead: nothing is
compiled, and each ``.run(*args, stream=...)`` the generated wrapper makes queues one kernel on
the simulated current stream, timed from the GPU's recorded compiled kernels or, for a key never
recorded, the bytes model (:mod:`profiles.families.triton`). The kernel is read from the source
Inductor generated: its name (fused op structure), argument names and Triton signature (dtypes,
which arguments are loop sizes).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from interpose.patching import Patcher
from profiles.families.triton import CompiledKernelProfiles, family_name, kind_of, launch_key

_SIGNATURE = re.compile(r"'signature': (\{[^}]*\})")
_DEF = re.compile(r"^def (\w+)\(([^)]*)\)", re.M)
_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64", "i64": "int64",
          "i32": "int32", "i16": "int16", "i8": "int8", "u8": "uint8", "i1": "bool"}  # fmt: skip
_profiles: dict[str, CompiledKernelProfiles] = {}


def profiles_for(gpu_key: str) -> CompiledKernelProfiles:
    """The GPU's recorded compiled kernels (loaded once per process)."""
    p = _profiles.get(gpu_key)
    if p is None:
        p = _profiles[gpu_key] = CompiledKernelProfiles.for_gpu(gpu_key)
    return p


class SimTritonKernel:
    """One generated Triton kernel on the simulated GPU (see module docstring)."""

    def __init__(self, kernel_name: str, source_code: str) -> None:
        m = _SIGNATURE.search(source_code)
        d = next((d for d in _DEF.finditer(source_code) if d.group(1) == kernel_name), None)
        if m is None or d is None:
            raise RuntimeError(f"phantora: cannot read the Triton kernel {kernel_name} Inductor generated "
                               "(no signature/def in its source): compiled kernels of this torch version are "
                               "not simulated")  # fmt: skip
        if kind_of(kernel_name) == "template":
            # a template (flex attention's fused kernel in a compiled graph) is compute-bound: the bytes
            # model would give a number that looks right and is not
            raise RuntimeError(f"phantora: the Triton template kernel {kernel_name} (flex attention inside a "
                               "compiled graph) is not simulated; compile flex_attention on its own "
                               "(torch.compile(flex_attention)) or run with phantora run --compile eager")  # fmt: skip
        sig: dict[str, str] = ast.literal_eval(m.group(1))
        self.kernel_name = kernel_name
        self.name = family_name(kernel_name)
        self.params = [a.split(":")[0].strip() for a in d.group(2).split(",") if a.strip()]
        self.types = [sig.get(p, "constexpr") for p in self.params]
        self.runtime_params = [(p, t) for p, t in zip(self.params, self.types, strict=True) if t != "constexpr"]
        self._timings: dict[tuple[str, int], tuple[float, str, str, str, str]] = {}

    def _timing(self, args: tuple) -> tuple[float, str, str, str, str]:
        key, nbytes = launch_key(self.kernel_name, self.runtime_params, args)
        cache_key = (key, nbytes)
        t = self._timings.get(cache_key)
        if t is None:
            from interpose.runtime import current

            dur, source = profiles_for(current().cfg.gpu.key).time(key, self.kernel_name, nbytes)
            _, sizes, dtypes = key.split("|")
            dtype = ",".join(sorted({_DTYPE.get(x, x) for x in dtypes.split(",") if x}))
            t = self._timings[cache_key] = (dur, source, key, sizes.replace(",", ";"), dtype)
        return t

    def run(self, *args: Any, stream: Any = None, **kwargs: Any) -> None:
        from interpose.runtime import current

        rt = current()
        clock = rt.clock
        clock.enter()
        try:
            dur, source, key, shapes, dtype = self._timing(args)
            rt.key_times.setdefault(key, (dur, source))
            rt.op_keys.append(key)
            rt.launch(self.name, shapes, dtype, dur, launch_us(rt), source)
        finally:
            clock.leave()

    # what callers of a compiled kernel object may touch besides ``run``
    def precompile(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_compile_info(self, *args: Any, **kwargs: Any) -> None:
        return None


def launch_us(rt: Any) -> float:
    """Host cost of one Triton launch: the compute model's kernel launch cost."""
    return float(getattr(rt.cfg.compute_model, "launch_overhead_us", 5.0))


def _triton(self: Any, kernel_name: str, source_code: str, device_str: str = "cuda") -> SimTritonKernel:
    if device_str != "cuda":
        raise RuntimeError(f"phantora: a compiled Triton kernel for device {device_str!r} is not simulated")
    return SimTritonKernel(kernel_name, source_code)


def install_kernels(p: Patcher) -> None:
    from torch._inductor.async_compile import AsyncCompile
    from torch._inductor.select_algorithm import AlgorithmSelectorCache

    p.set(AsyncCompile, "triton", _triton)
    select = AlgorithmSelectorCache.__call__

    def select_without_benchmarks(self: Any, name: str, choices: list, *args: Any, **kwargs: Any) -> Any:
        # with more than one candidate Inductor benchmarks them on the GPU (example inputs on the real
        # device): which one a GPU would pick is not known here, so say so rather than guess
        if len(choices) > 1:
            raise RuntimeError(f"phantora: Inductor autotunes {name} ({len(choices)} candidate kernels, e.g. flex "
                               "attention inside a compiled graph) by benchmarking on the GPU, which is not "
                               "simulated; compile flex_attention on its own (torch.compile(flex_attention)) or "
                               "run with phantora run --compile eager")  # fmt: skip
        return select(self, name, choices, *args, **kwargs)

    p.set(AlgorithmSelectorCache, "__call__", select_without_benchmarks)
