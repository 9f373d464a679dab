"""Host processes a rank starts (DataLoader workers, ``multiprocessing`` pools) run on the host, for real.

On a GPU machine a DataLoader worker is an ordinary CPU process beside the training process: its CPU
time is its own (it overlaps the step), and it never touches the GPU (PyTorch refuses CUDA in a
forked child). Under the shim two things would break that:

* ``multiprocessing`` waits with deadlines read from ``time.monotonic()`` (``connection.wait``,
  ``Queue.get``, ``Event.wait``), which the shim makes simulated time: it stands still while the
  rank blocks, so a poll with ``timeout=0`` (``Process.start`` polls its earlier children) loops
  forever. Those modules get the real ``time`` functions (:func:`install_host_workers`): a wait for
  a worker is a real wait, as a GPU host's is.
* a *forked* child inherits the whole shim (fake CUDA, the virtual clock, the rank's coordinator
  channel). The child takes the shim off first thing (:func:`_after_fork_in_child`): it computes on
  the CPU like a real worker, and it cannot write to the rank's channel or clock.

Spawned and forkserver children are fresh interpreters without the shim, as on a GPU host they
are fresh processes (they re-import the script as ``__mp_main__``; ``torch.cuda.is_available()`` is
False there). Workers live in the rank's process group, so they die with the rank
(:mod:`phantora.lifecycle`).
"""

from __future__ import annotations

import importlib
import os
import time as _time
import types
from typing import Any

from interpose.patching import Patcher

REAL_TIME = types.SimpleNamespace(**{name: getattr(_time, name) for name in dir(_time) if not name.startswith("__")})
"""The ``time`` module as imported, before the shim patches it (read at import of this module,
which happens before :class:`interpose.clock.TimePatch` installs)."""

MP_MODULES = ("multiprocessing.connection", "multiprocessing.queues", "multiprocessing.synchronize",
              "multiprocessing.managers", "multiprocessing.pool")
"""The ``multiprocessing`` modules that read ``time.monotonic()`` at call time for their timeouts."""

_installed = False


def install_host_workers(p: Patcher) -> None:
    """Give ``multiprocessing``'s waits real time while the shim is installed (undone by ``p``)."""
    global _installed
    for name in MP_MODULES:
        p.set(importlib.import_module(name), "time", REAL_TIME)
    _installed = True


def restore_host_workers() -> None:
    global _installed
    _installed = False


def _after_fork_in_child() -> None:
    """A process forked while the shim is installed is a host process (a DataLoader worker): take
    the shim off in it. The rank's channel stays open in the child but nothing sends on it."""
    if not _installed:
        return
    from interpose import runner

    _uninstall_quietly(runner.uninstall)


def _uninstall_quietly(fn: Any) -> None:
    try:
        fn()
    except Exception as e:  # a half-installed shim in a worker must not kill the worker
        import sys

        print(f"phantora: could not take the shim off in forked process {os.getpid()}: {e}", file=sys.stderr)


os.register_at_fork(after_in_child=_after_fork_in_child)
