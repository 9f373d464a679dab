"""What ``torch.distributed`` is patched with inside a simulated rank, all through one
:class:`~interpose.patching.Patcher` so :func:`uninstall` undoes exactly what :func:`install` did.

The simulated backend is registered as ``phantora`` and every backend request (``nccl``, ``gloo``,
``cpu:gloo,cuda:nccl``, none) is routed to it, while ``get_backend`` / ``get_backend_config`` answer
what the script asked for (programs branch on ``get_backend() == "nccl"``: torch's own
``nn.functional`` all-to-all, ``monitored_barrier``'s gloo check, FSDP's and DeepSpeed's set-up); ``env://`` rendezvous gets a per-rank in-memory
store; DDP's cross-rank shape check and CUDA-timer logger are skipped; ``batch_isend_irecv`` is
marked as one NCCL group; object collectives are relayed (:mod:`interpose.distributed.objects`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

from interpose.distributed import objects
from interpose.distributed.process_group import SimProcessGroup
from interpose.distributed.sink import CollectiveSink, LocalSink
from interpose.patching import Patcher

STORE_TIMEOUT_S = 30
"""How long a rank's private rendezvous store waits for a key before raising."""

BACKEND_NAME = "phantora"
"""Name under which the backend is registered; ``nccl`` and ``gloo`` requests are routed to it."""


class _State:
    """The process-wide install: the sink collectives go to, and the patches to undo."""

    def __init__(self) -> None:
        self.sink: CollectiveSink | None = None
        self.patcher: Patcher | None = None
        self.backend_map: dict[str, str] = {}
        self.requested: dict[Any, str] = {}
        """Each group's backend as the script asked for it (before routing), by process group."""


_state = _State()


def current_sink() -> CollectiveSink:
    """The sink new process groups send to (a :class:`LocalSink` unless one was installed)."""
    if _state.sink is None:
        _state.sink = LocalSink()
    return _state.sink


def _create(store: Any, rank: int, size: int, timeout: Any) -> SimProcessGroup:
    return SimProcessGroup(rank, size, current_sink())


def _batched(orig: Any) -> Any:
    def batch_isend_irecv(p2p_op_list: list) -> list:
        sink = current_sink()
        sink.begin_batch()
        try:
            return orig(p2p_op_list)
        finally:
            sink.end_batch()

    return batch_isend_irecv


def _route(backend: object) -> str:
    """Rewrite a backend request (``nccl``, ``cpu:gloo,cuda:nccl``, undefined) to ours."""
    text = str(backend) if backend is not None else "undefined"
    if text in ("undefined", "None", ""):
        return BACKEND_NAME
    for name in ("nccl", "gloo", "ucc", "mpi", "xccl"):
        text = text.replace(name, BACKEND_NAME)
    parts = {p.split(":")[-1] for p in text.split(",")}
    return BACKEND_NAME if parts == {BACKEND_NAME} else text


def _asked(group: Any) -> str | None:
    """The backend the script asked for ``group`` (default: the default group), or ``None`` if unrecorded."""
    return _state.requested.get(group or c10d._get_default_group())


def _get_backend(orig: Any) -> Any:
    def get_backend(group: Any = None) -> str:
        routed = orig(group)  # c10d's own checks (an unknown group, a rank outside it) first
        asked = _asked(group)
        return dist.Backend(asked) if asked is not None else routed

    return get_backend


def _get_backend_config(orig: Any) -> Any:
    def get_backend_config(group: Any = None) -> str:
        routed = orig(group)
        asked = _asked(group)
        if asked is None:
            return routed
        if asked == "undefined":  # what a CUDA machine's torch picks: its default per device
            return ",".join(f"{d}:{b}" for d, b in _state.backend_map.items() if d in ("cpu", "cuda"))
        return str(c10d.BackendConfig(dist.Backend(asked)))

    return get_backend_config


def monitored_barrier(group: Any = None, timeout: Any = None, wait_all_ranks: bool = False) -> None:
    """``dist.monitored_barrier``: gloo groups only, as in torch; then a simulated barrier (a member that
    never arrives is reported by the coordinator's deadlock check, naming what each rank waits for)."""
    if dist.get_backend(group) != dist.Backend.GLOO:
        raise ValueError("monitored_barrier is only implemented for GLOO backend.")
    dist.barrier(group=group)


def set_timeout(timeout: timedelta, group: dist.ProcessGroup | None = None) -> None:
    """``torch.distributed.set_timeout`` for torch builds without it (newer torch has it): a simulated
    group never times out, so after checking the arguments as torch does nothing changes."""
    if not isinstance(timeout, timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got {timeout}")
    if group is None and not dist.is_initialized():
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group.")


class _QuietDdpLogger(dist.Logger):
    """``dist.Logger`` without runtime-stat sampling (needs CUDA timers)."""

    def set_runtime_stats_and_log(self) -> None:
        return None


def _init_process_group(orig: Any) -> Any:
    def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                           store=None, group_name="", pg_options=None, device_id=None, **kw):
        if store is None and init_method in (None, "env://"):
            world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size == -1 else world_size
            rank = int(os.environ.get("RANK", 0)) if rank == -1 else rank
            store = dist.HashStore()
            # a key only another rank would set never appears: fail in seconds rather than hang
            store.set_timeout(timedelta(seconds=STORE_TIMEOUT_S))
        if timeout is None:
            timeout = timedelta(minutes=10)
        # device_id only binds NCCL communicators eagerly (and fails the accelerator check of a
        # CPU build of torch); the simulated backend has nothing to bind, so it is dropped.
        return orig(backend=backend, init_method=None if store is not None else init_method,
                    timeout=timeout, world_size=world_size, rank=rank, store=store,
                    group_name=group_name, pg_options=pg_options, device_id=None, **kw)

    return init_process_group


def install(sink: CollectiveSink | None = None) -> None:
    """Make ``torch.distributed`` use the simulated backend in this process.

    Idempotent; ``sink`` replaces the current one (default: a :class:`LocalSink`).
    Also gives ``init_process_group`` a per-rank in-memory store when the script relies on
    ``env://`` rendezvous, so no rank ever opens a TCP connection to another.
    """
    _state.sink = sink
    if _state.patcher is not None:
        return
    if BACKEND_NAME.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(BACKEND_NAME, _create, devices=["cpu", "cuda"])
    _state.backend_map = dict(dist.Backend.default_device_backend_map)
    for dev in ("cpu", "cuda"):
        dist.Backend.default_device_backend_map[dev] = BACKEND_NAME
    p = _state.patcher = Patcher()
    orig_helper = c10d._new_process_group_helper

    def helper(group_size, group_rank, global_ranks, backend, *args, **kwargs):
        out = orig_helper(group_size, group_rank, global_ranks, dist.Backend(_route(backend)), *args, **kwargs)
        pg = out[0] if isinstance(out, tuple) else out
        if isinstance(pg, dist.ProcessGroup):
            asked = str(dist.Backend(str(backend) if backend is not None else "undefined"))
            if asked == BACKEND_NAME and dist.is_initialized():  # ``new_group()`` inherits the default's
                asked = _asked(None) or asked
            _state.requested[pg] = asked
        return out

    p.set(c10d, "_new_process_group_helper", helper)
    for name, fn in (("get_backend", _get_backend(c10d.get_backend)),
                     ("get_backend_config", _get_backend_config(c10d.get_backend_config)),
                     ("monitored_barrier", monitored_barrier)):  # fmt: skip
        p.set(c10d, name, fn)
        p.set(dist, name, fn)
    init = _init_process_group(c10d.init_process_group)
    p.set(c10d, "init_process_group", init)
    p.set(dist, "init_process_group", init)
    # DDP's cross-rank parameter-shape check reads gathered values back; fake cuda tensors have
    # none, and every simulated rank runs the same script, so the check is skipped.
    p.set(dist, "_verify_params_across_processes", lambda *args, **kwargs: None)
    # DDP's logger times iterations with CUDA events through a C++ timer that the CPU build
    # lacks (it asserts); its statistics are not needed, so sampling them is skipped.
    p.set(dist, "Logger", _QuietDdpLogger)
    # batch_isend_irecv is one NCCL group (its ops run concurrently); c10d only groups them for
    # its own ProcessGroup class, so the batch is marked here
    batched = _batched(dist.batch_isend_irecv)
    p.set(c10d, "batch_isend_irecv", batched)
    p.set(dist, "batch_isend_irecv", batched)
    # object collectives read pickles back from device tensors: relay them instead
    for name, fn in objects.PATCHED.items():
        p.set(c10d, name, fn)
        p.set(dist, name, fn)
    # scripts written for newer torch adjust group timeouts (``dist.set_timeout``)
    if not hasattr(dist, "set_timeout"):
        p.set(dist, "set_timeout", set_timeout)
        p.set(c10d, "set_timeout", set_timeout)


def uninstall() -> None:
    """Undo :func:`install` (tears down any live process group first)."""
    if _state.patcher is None:
        return
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.Backend.default_device_backend_map.clear()
    dist.Backend.default_device_backend_map.update(_state.backend_map)
    _state.patcher.restore()
    _state.patcher = None
    _state.sink = None
    _state.requested.clear()
