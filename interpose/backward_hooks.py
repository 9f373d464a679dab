"""Python run by the autograd engine during backward is the script's host time, not the shim's.

Why: ``measured`` host time counts the whole backward call as shim time (the C++ engine's
per-node bookkeeping on fake tensors is not what a GPU host pays; :func:`interpose.runner`'s
``_patch_backward``). The Python the engine calls back into is real work on a GPU host too:
DeepSpeed ZeRO-3's pre/post-backward module functions and per-parameter reduce hooks, FSDP2's
post-backward hooks and its final callback, module backward hooks, checkpoint recomputation.
Each such callback, wherever the program registers it, is wrapped so that while it runs the
clock counts the script's CPU time again (the shim ops it dispatches are taken out as in
forward). Installed in ``measured`` mode only; ``zero`` mode counts no script time at all.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Callable

    from interpose.clock import VirtualClock
    from interpose.patching import Patcher


def as_script(clock: VirtualClock, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its run time counted as the script's when the engine calls it."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        depth = clock.script_begin()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.script_end(depth)

    return run


class _Engine:
    """``Variable._execution_engine`` with ``queue_callback``'s callbacks counted as script time
    (the C++ engine object takes no attributes, so it is wrapped, not patched)."""

    def __init__(self, engine: Any, clock: VirtualClock) -> None:
        self._engine, self._clock = engine, clock

    def queue_callback(self, callback: Callable[[], Any]) -> None:
        self._engine.queue_callback(as_script(self._clock, callback))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def raw_engine() -> Any:
    """The C++ engine itself, for the shim's own end-of-backward callbacks (not script time)."""
    engine = torch.autograd.Variable._execution_engine
    return engine._engine if isinstance(engine, _Engine) else engine


def install(p: Patcher, clock: VirtualClock) -> None:
    """Wrap every registration point of a Python callback the engine runs in backward."""
    from torch.autograd.function import BackwardCFunction
    from torch.autograd.graph import saved_tensors_hooks
    from torch.utils.hooks import BackwardHook

    apply = BackwardCFunction.apply  # custom autograd.Function backward (every subclass inherits it)
    p.set(BackwardCFunction, "apply", as_script(clock, apply))

    def wrapping(register: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(register)
        def reg(self: Any, hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return register(self, as_script(clock, hook), *args, **kwargs)

        return reg

    for name in ("register_hook", "register_post_accumulate_grad_hook"):
        p.set(torch.Tensor, name, wrapping(getattr(torch.Tensor, name)))

    init = saved_tensors_hooks.__init__  # unpack runs in backward (checkpoint recomputation)

    @functools.wraps(init)
    def hooks_init(self: Any, pack_hook: Callable[..., Any], unpack_hook: Callable[..., Any]) -> None:
        init(self, pack_hook, as_script(clock, unpack_hook))

    p.set(saved_tensors_hooks, "__init__", hooks_init)

    bh_init = BackwardHook.__init__  # nn.Module full backward (pre-)hooks

    @functools.wraps(bh_init)
    def backward_hook_init(self: Any, module: Any, user_hooks: list, user_pre_hooks: list) -> None:
        bh_init(
            self,
            module,
            [as_script(clock, h) for h in user_hooks],
            [as_script(clock, h) for h in user_pre_hooks],
        )

    p.set(BackwardHook, "__init__", backward_hook_init)
    variable = torch.autograd.Variable
    p.set(variable, "_execution_engine", _Engine(variable._execution_engine, clock))
