"""Functional collectives (``_c10d_functional.*``: DTensor, FSDP2, MoE token dispatchers) under the shim.

FakeTensorMode would run only their meta kernels, so the collective would never be issued; the
shim runs the composite kernel instead (under the fake mode), which reaches the simulated process
group. Known values follow as on the ProcessGroup path (:mod:`interpose.distributed.collective_values`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from interpose.dispatch import SimDispatchMode

NAMESPACES = frozenset({"_c10d_functional", "_c10d_functional_autograd"})
"""Op namespaces handled here."""

_COMPOSITE_KEYSET = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)
_FUNCTIONAL = torch.ops._c10d_functional
_CLONING = {_FUNCTIONAL.all_reduce.default, _FUNCTIONAL.all_reduce_coalesced.default, _FUNCTIONAL.broadcast.default}
"""Functional collectives whose composite kernel clones the input (below the shim, so the clone has
no known value) and then reduces the clone in place; the other functional collectives allocate an
output that the process group writes whole, which :mod:`interpose.distributed.collective_values` adopts."""


def clone_values(func: Any, args: tuple, out: Any) -> None:
    """Known inputs of a cloning functional collective give known outputs (symmetric ranks)."""
    from interpose.distributed import collective_values

    if func is _FUNCTIONAL.broadcast.default:
        collective_values.functional_result(out, args[0])
        return
    import torch.distributed.distributed_c10d as c10d

    n = c10d._resolve_process_group(args[2]).size()
    ins, outs = (args[0], out) if isinstance(out, list | tuple) else ([args[0]], [out])
    for i, o in zip(ins, outs, strict=False):
        collective_values.functional_result(o, i, str(args[1]).lower(), n)


def collective(mode: SimDispatchMode, func: Any, args: tuple, kwargs: dict) -> Any:
    """Run the real composite kernel, which clones/allocates the output and calls the process group
    (the simulated one, whose work goes onto the runtime's streams)."""
    with mode.fake:  # the kernel's own allocations (clone, empty) must be fake too
        out = func.redispatch(_COMPOSITE_KEYSET, *args, **kwargs)
    mode.track(out)
    if func in _CLONING and mode.values:
        clone_values(func, args, out)
    return out
