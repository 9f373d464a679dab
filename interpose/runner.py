"""Install/uninstall the shim and run a script as ``__main__`` under it."""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import runpy
import sys
import traceback
from collections.abc import Iterator
from typing import cast

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from interpose import backward_hooks
from interpose import runtime as _runtime
from interpose.clock import TimePatch
from interpose.config import RankConfig, RankResult
from interpose.cuda_api import install_cuda_api
from interpose.cuda_guard import ensure_cuda_guard, release_cuda_hooks
from interpose.dispatch import SimDispatchMode, SimFakeMode
from interpose.fake_cuda import install_fake_cuda, restore_fake_cuda
from interpose.host_model import host_scale, replayed_cost_scale
from interpose.one_hot import make_one_hot
from interpose.patching import Patcher
from interpose.runtime import RankRuntime
from interpose.sdpa import make_sdpa


class _Installed:
    def __init__(
        self,
        rt: RankRuntime,
        mode: SimDispatchMode,
        patcher: Patcher,
        tp: TimePatch,
        hook,
        lift_cpu_only: bool,
        autograd_threads: bool,
    ) -> None:
        self.rt, self.mode, self.patcher, self.time_patch, self.hook = rt, mode, patcher, tp, hook
        self.lift_cpu_only = lift_cpu_only
        self.autograd_threads = autograd_threads


_state: _Installed | None = None


def install(cfg: RankConfig) -> RankRuntime:
    """Start simulating: patch torch/time, push the dispatch mode; returns the rank's runtime."""
    global _state
    if _state is not None:
        raise RuntimeError("interpose is already installed in this process")
    ensure_cuda_guard(cast("tuple[int, int]", tuple(cfg.gpu.capability)))
    rt = RankRuntime(cfg)
    _runtime.set_current(rt)
    patcher = Patcher()
    # no fallback kernels: for an op without a meta kernel FakeTensorMode would run the real kernel
    # on zero-filled tensors of the fake device, i.e. real CUDA (a CUDA build would call the
    # driver; a CPU build cannot run it anyway); such an op raises UnsupportedOperatorException
    fake = SimFakeMode(allow_non_fake_inputs=True, allow_fallback_kernels=False)
    mode = SimDispatchMode(rt, fake, cfg.compute_model)
    install_cuda_api(patcher, rt)
    install_fake_cuda(patcher)
    patcher.set(
        torch.nn.functional,
        "scaled_dot_product_attention",
        make_sdpa(torch.nn.functional.scaled_dot_product_attention),
    )
    patcher.set(torch.nn.functional, "one_hot", make_one_hot(torch.nn.functional.one_hot))
    patcher.after_import("transformers.utils.import_utils", lambda mod: _untrace_sim_fakes(patcher, mod, fake))
    # torch.tensor(data, device="cuda") builds on the CPU, then moves it through the dispatcher
    lift_cpu_only = torch._C._only_lift_cpu_tensors()
    torch._C._set_only_lift_cpu_tensors(True)
    # run backward on the calling thread: the fake CUDA guard would otherwise give
    # "cuda" its own autograd worker thread (GIL hand-offs, nondeterministic order)
    autograd_threads = torch._C._is_multithreading_enabled()
    torch._C._set_multithreading_enabled(False)
    hook = _iteration_hooks(rt)
    _patch_backward(patcher, rt)
    rt.host_cost_scale = replayed_cost_scale(cfg.host_bench_us, cfg.compute_model)
    rt.host_model["replayed_cost_scale"] = rt.host_cost_scale
    if cfg.host_time == "measured":
        backward_hooks.install(patcher, rt.clock)
        rt.clock.per_call_us = mode.calibrate()
        cfg.compute_model.measure_script_time()
        scale = host_scale(cfg.host_bench_us, cfg.compute_model)
        rt.clock.scale = scale.factor
        if scale.probe_ref_us:
            from profiles.hostbench import python_probe_us

            rt.clock.probe, rt.clock.probe_ref_us = python_probe_us, scale.probe_ref_us
        rt.host_model.update(scale.as_dict())
    tp = TimePatch(rt.clock)
    tp.install()
    mode.__enter__()
    if cfg.host_time == "measured":
        rt.clock.per_entry_us = mode.calibrate_entry()
    rt.clock.leave_mark()
    _state = _Installed(rt, mode, patcher, tp, hook, lift_cpu_only, autograd_threads)
    return rt


def _untrace_sim_fakes(p: Patcher, import_utils, fake: SimFakeMode) -> None:
    """Hugging Face transformers takes a FakeTensor for a sign of graph tracing (``is_tracing``) and
    then never reads mask values: it builds an explicit mask and repeats k/v where the program on a
    GPU (real tensors) checks the mask and passes none, with ``is_causal`` and GQA. The shim's fake
    tensors stand for real GPU tensors (their known values are read like real ones), so they are
    not tracing; the script's own FakeTensorModes still are."""
    orig = import_utils.is_fake_tensor

    def is_fake_tensor(x) -> bool:
        if isinstance(x, FakeTensor) and x.fake_mode is fake:
            return False
        return orig(x)

    p.set(import_utils, "is_fake_tensor", is_fake_tensor)


def _iteration_hooks(rt: RankRuntime) -> list:
    """Where iterations end: each outermost ``Optimizer.step`` (an optimizer whose ``step`` calls other
    optimizers' steps, e.g. a container of one per model part, is one step, not several), and, for
    programs that never step an optimizer (inference, ``generate()``), each outermost module forward
    (:meth:`RankRuntime.result` uses those only when there were no optimizer steps)."""
    depth = {"opt": 0, "fwd": 0}

    def opt_pre(opt, args, kwargs):
        depth["opt"] += 1

    def opt_post(opt, args, kwargs):
        depth["opt"] = max(depth["opt"] - 1, 0)
        if depth["opt"] == 0:
            rt.mark_step(opt)

    def fwd_pre(module, args):
        depth["fwd"] += 1

    def fwd_post(module, args, out):
        depth["fwd"] = max(depth["fwd"] - 1, 0)
        if depth["fwd"] == 0:
            rt.mark_forward()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    return [register_optimizer_step_pre_hook(opt_pre), register_optimizer_step_post_hook(opt_post),
            register_module_forward_pre_hook(fwd_pre), register_module_forward_hook(fwd_post, always_call=True)]


def _patch_backward(p: Patcher, rt: RankRuntime) -> None:
    """Count the autograd engine's own host time as shim time.

    On fake tensors the C++ engine spent ~1 ms per backward call outside any
    op (a linear layer's backward under cProfile on the 2-core dev machine); on a GPU its per-node cost is a few us
    and is covered by the per-op launch overhead, so ``measured`` host time
    should not charge it to the script. The Python callbacks it runs are the script's again
    (:mod:`interpose.backward_hooks`).
    """
    import torch.autograd as autograd

    orig = autograd._engine_run_backward
    clock = rt.clock

    def _engine_run_backward(*args, **kwargs):
        clock.enter()
        try:
            return orig(*args, **kwargs)
        finally:
            clock.leave()

    p.set(autograd, "_engine_run_backward", _engine_run_backward)


def uninstall() -> None:
    """Undo :func:`install` (idempotent)."""
    global _state
    st = _state
    if st is None:
        return
    _state = None
    st.mode.__exit__(None, None, None)
    st.time_patch.uninstall()
    for h in st.hook:
        h.remove()
    restore_fake_cuda()
    torch._C._set_only_lift_cpu_tensors(st.lift_cpu_only)
    torch._C._set_multithreading_enabled(st.autograd_threads)
    release_cuda_hooks()
    st.patcher.restore()
    _runtime.set_current(None)


@contextlib.contextmanager
def interposed(cfg: RankConfig) -> Iterator[RankRuntime]:
    """``with interposed(cfg) as rt:`` runs the body on the simulated GPU."""
    rt = install(cfg)
    try:
        yield rt
    finally:
        uninstall()


def _user_traceback(exc: BaseException, script: str) -> str:
    """The traceback from the script's first frame on (runner/runpy frames dropped)."""
    te = traceback.TracebackException.from_exception(exc)
    frames = list(te.stack)
    script = os.path.abspath(script)
    start = next((i for i, f in enumerate(frames) if os.path.abspath(f.filename) == script), None)
    if start is not None:
        te.stack = traceback.StackSummary.from_list(frames[start:])
    return "".join(te.format())


def module_file(name: str, first_dir: str) -> str | None:
    """The source file of module ``name`` (``python -m`` semantics, ``first_dir`` first on the
    path), or ``None``. Found without importing anything: a package's ``__init__`` must first run
    under the shim, as it would under ``python -m`` on the GPU.
    """
    path: list[str] = [first_dir, *sys.path]
    parts = name.split(".")
    spec = None
    for i in range(1, len(parts) + 1):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:i]), path)
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
    if spec is not None and spec.submodule_search_locations:  # a package: python -m runs its __main__
        main = importlib.machinery.PathFinder.find_spec(f"{name}.__main__", list(spec.submodule_search_locations))
        spec = main
    return spec.origin if spec is not None and spec.origin else None


def run_script(script_path: str, argv: list[str], cfg: RankConfig, *, module: bool = False) -> RankResult:
    """Run ``script_path`` as ``__main__`` with ``argv`` in this process on a simulated GPU.

    ``module=True``: ``script_path`` is a module name run like ``python -m`` / ``torchrun -m``
    (the working directory goes first on ``sys.path``). Exceptions from the script are caught
    and returned in ``RankResult.error`` (``exit_code`` 1); ``SystemExit`` codes are honoured.
    """
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    if module:
        sys.path.insert(0, os.getcwd())
        origin = module_file(script_path, os.getcwd())
        script = os.path.abspath(origin) if origin else script_path
    else:
        script = os.path.abspath(script_path)
        sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script if module else script_path, *argv]
    exit_code, error, oom = 0, None, False
    rt = install(cfg)
    try:
        if module:
            runpy.run_module(script_path, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code
        if code is None:
            exit_code = 0
        elif isinstance(code, int):
            exit_code = code
        else:
            print(code, file=sys.stderr)
            exit_code = 1
    except torch.cuda.OutOfMemoryError as e:
        exit_code, error, oom = 1, _user_traceback(e, script), True
    except BaseException as e:
        exit_code, error = 1, _user_traceback(e, script)
    finally:
        rt.clock.enter()  # bank the script's last stretch of CPU time
        rt.clock.leave()
        result = rt.result()
        uninstall()
        sys.argv, sys.path[:] = saved_argv, saved_path
    result.exit_code, result.error, result.oom = exit_code, error, oom
    missing = getattr(cfg.compute_model, "missing_signatures", None)
    result.missing_signatures = list(missing()) if callable(missing) else []
    return result
