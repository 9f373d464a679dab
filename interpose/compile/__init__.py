"""``torch.compile`` on the simulated GPU: the real Dynamo, AOTAutograd and Inductor, simulated kernels.

Under the shim ``torch.compile`` is torch's own. Dynamo traces the script's frames (graph breaks,
guards and recompiles are its own), AOTAutograd partitions forward and backward (what is saved and
what recomputed is its partitioner's choice) and Inductor fuses, plans buffers and writes its Python
wrapper, all on the shim's fake cuda tensors, with the shim's dispatch modes off while compiling
(``ignore_compile_internals``) and on while the compiled code runs. Only the step that would touch a
GPU is replaced: ``AsyncCompile.triton`` returns a simulated kernel (:mod:`.kernels`), so each Triton
kernel Inductor would launch is one simulated kernel; the wrapper's buffers
(``empty_strided_cuda``), extern kernels (``mm``, ``addmm``, attention) and views reach the shim's
dispatch mode as aten ops, so memory is Inductor's plan and extern kernels keep their own timing.
:mod:`.surface` answers Inductor's device queries. Compile time is the simulating machine's, not
the target's: it is banked as shim time (host clock still), see :class:`CompileStats`.

``RankConfig.compile = "eager"`` (``phantora run --compile eager``) keeps the old behaviour:
``torch.compile`` returns the function unchanged and its eager ops are simulated.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interpose.patching import Patcher

COMPILE_OPTIONS = ("inductor", "eager")
"""``inductor``: simulate what ``torch.compile`` builds (default); ``eager``: run the function eagerly."""

_UNSIMULATED_MODES = ("max-autotune",)
"""Modes that benchmark candidate kernels on the device while compiling (not simulated)."""


@dataclass
class CompileStats:
    """What ``torch.compile`` did in this rank (``summary.json`` ``compile``)."""

    option: str = "inductor"
    frames_compiled: int = 0
    compile_wall_s: float = 0.0
    """Wall time spent compiling on the simulating machine (not simulated time)."""
    graph_breaks: dict[str, int] = field(default_factory=dict)
    """Dynamo's graph-break reasons and counts (``torch._dynamo.utils.counters["graph_break"]``)."""
    unique_graphs: int = 0
    recompiles: int = 0
    not_compiled: dict[str, str] = field(default_factory=dict)
    """Functions ``torch.compile`` was given that run as the shim's own ops instead, and how they are timed."""

    def as_dict(self) -> dict[str, Any]:
        from torch._dynamo.utils import counters

        self.graph_breaks = dict(counters["graph_break"])
        self.unique_graphs = int(counters["stats"].get("unique_graphs", 0))
        self.recompiles = sum(counters["recompiles"].values()) if "recompiles" in counters else 0
        return {"option": self.option, "frames_compiled": self.frames_compiled,
                "compile_wall_s": round(self.compile_wall_s, 3),
                "graph_break_count": sum(self.graph_breaks.values()), "graph_breaks": self.graph_breaks,
                "unique_graphs": self.unique_graphs, "recompiles": self.recompiles,
                "not_compiled": self.not_compiled}  # fmt: skip


def _eager_compile(model: Any = None, **kwargs: Any) -> Any:
    """``--compile eager``: ``torch.compile`` returns the function (decorator and call forms)."""
    if model is None:
        return lambda m: m
    return model


def _quiet_shim_hooks() -> None:
    """The shim's global module hooks (where iterations end) are no-ops inside compiled code: Dynamo
    would otherwise trace them into the graph (graph breaks a GPU run does not have). A compiled
    module is called through its ``OptimizedModule``, whose own hooks still run, outside the graph."""
    from torch.nn.modules import module as nn_module

    for hooks in (nn_module._global_forward_pre_hooks, nn_module._global_forward_hooks):
        for k, hook in list(hooks.items()):
            if getattr(hook, "__module__", "").startswith("interpose.") and not hasattr(hook, "_phantora_quiet"):
                hooks[k] = _quiet(hook)


def _quiet(hook: Any) -> Any:
    def quiet_hook(*args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return None
        return hook(*args, **kwargs)

    quiet_hook._phantora_quiet = True  # type: ignore[attr-defined]
    return quiet_hook


def _make_compile(real: Any, stats: CompileStats) -> Any:
    from torch.nn.attention import flex_attention as flex

    # PyTorch's recommended uses, torch.compile(flex_attention) and torch.compile(create_block_mask): on a
    # GPU, fused Triton kernels (a template chosen by benchmarking candidates, for the attention); the
    # shim runs the functions themselves instead, says so in the results, and times flex attention as
    # attention (interpose.flex_attention)
    as_ops = {flex.flex_attention: "timed as the shim's flex attention op (flash-attention model)",
              flex.create_block_mask: "eager: the mask is built by its eager ops"}  # fmt: skip

    def compile(model: Any = None, **kwargs: Any) -> Any:
        note = next((n for f, n in as_ops.items() if model is f), None)
        if note is not None:
            stats.not_compiled[model.__name__] = note
            return model
        _quiet_shim_hooks()
        mode = kwargs.get("mode") or ""
        if any(mode.startswith(m) for m in _UNSIMULATED_MODES):
            raise RuntimeError(f"phantora: torch.compile(mode={mode!r}) benchmarks kernels on the GPU while "
                               "compiling, which is not simulated (use the default mode or 'reduce-overhead', "
                               "or phantora run --compile eager)")  # fmt: skip
        return real(model, **kwargs) if model is not None else real(**kwargs)

    return compile


def _bank_compile_time(p: Patcher, stats: CompileStats) -> None:
    """Compiling is the simulating machine's work, not the target host's: its CPU time is banked as
    shim time (the host clock stands still), its wall time goes to :class:`CompileStats`."""
    from torch._dynamo.callback import callback_handler

    from interpose.runtime import current

    start: list[float] = []

    def on_start(args: Any) -> None:
        current().clock.enter_callback()
        start.append(os.times().elapsed)
        stats.frames_compiled += 1

    def on_end(args: Any) -> None:
        stats.compile_wall_s += os.times().elapsed - start.pop()
        current().clock.leave()

    global _callbacks
    callback_handler.register_start_callback(on_start)
    callback_handler.register_end_callback(on_end)
    _callbacks = (on_start, on_end)
    clear = callback_handler.clear

    def clear_keeping_ours() -> None:  # torch._dynamo.reset() clears every callback
        clear()
        callback_handler.register_start_callback(on_start)
        callback_handler.register_end_callback(on_end)

    p.set(callback_handler, "clear", clear_keeping_ours)


_callbacks: tuple[Any, Any] | None = None


def uninstall_compile() -> None:
    """Remove the compile-time callbacks (the patcher restores the rest)."""
    global _callbacks, _user_cache_tag
    if _user_cache_tag is not None:
        import torch.compiler.config as compiler_config

        compiler_config.cache_key_tag, _user_cache_tag = _user_cache_tag, None
    if _callbacks is not None:
        from torch._dynamo.callback import callback_handler

        with contextlib.suppress(ValueError):
            callback_handler.remove_start_callback(_callbacks[0])
            callback_handler.remove_end_callback(_callbacks[1])
        _callbacks = None


def _tag_caches() -> None:
    """Inductor's and AOTAutograd's on-disk caches key a graph by its inputs, not by the fake kernels'
    output layouts inside it; tag the key with the shim's layout rules so a change to them recompiles
    instead of replaying code whose stride asserts no longer hold."""
    import hashlib

    import torch.compiler.config as compiler_config

    import interpose.conv_layout
    import interpose.output_layouts

    h = hashlib.sha256()
    for mod in (interpose.conv_layout, interpose.output_layouts):
        h.update(Path(str(mod.__file__)).read_bytes())
    global _user_cache_tag
    if _user_cache_tag is None:  # not the Patcher: its restore deletes, which hides a config entry
        _user_cache_tag = compiler_config.cache_key_tag
    compiler_config.cache_key_tag = f"{_user_cache_tag}phantora-{h.hexdigest()[:12]}"


_user_cache_tag: str | None = None


def install_compile(p: Patcher, option: str) -> CompileStats:
    """Patch ``torch.compile`` for ``option`` (:data:`COMPILE_OPTIONS`); returns the rank's stats."""
    if option not in COMPILE_OPTIONS:
        raise ValueError(f"phantora: unknown compile option {option!r} (valid: {', '.join(COMPILE_OPTIONS)})")
    stats = CompileStats(option=option)
    if option == "eager":
        p.set(torch, "compile", _eager_compile)
        return stats
    real = torch.compile
    simulated: list[Any] = []

    def first_compile(*args: Any, **kwargs: Any) -> Any:
        # the compile machinery (Inductor, Triton's hooks) is set up at the first torch.compile call:
        # a program that never compiles pays nothing and touches none of it
        if not simulated:
            simulated.append(_install_inductor(p, real, stats))
        return simulated[0](*args, **kwargs)

    p.set(torch, "compile", first_compile)
    return stats


def _install_inductor(p: Patcher, real: Any, stats: CompileStats) -> Any:
    """Point Dynamo/Inductor at the simulated GPU; returns the ``torch.compile`` the script gets."""
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters

    from interpose.compile.kernels import install_kernels
    from interpose.compile.surface import install_surface

    counters.clear()
    install_surface(p)
    install_kernels(p)
    _tag_caches()
    p.set(inductor_config, "compile_threads", 1)  # no compile worker processes: nothing is compiled
    # reduce-overhead: Inductor's plain CUDA-graph path (capture once, replay through torch.cuda.CUDAGraph,
    # which the shim simulates); cudagraph trees' shared pool lives in C++ allocator internals
    p.set(inductor_config.triton, "cudagraph_trees", False)
    compile_fn = _make_compile(real, stats)
    p.set(torch, "compile", compile_fn)
    _bank_compile_time(p, stats)
    return compile_fn
