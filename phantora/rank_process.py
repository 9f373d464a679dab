"""Run one simulated rank in a child process and bring its :class:`interpose.RankResult` back.

The child is forked from the CLI after torch and the shim are imported (fast start), so the
script's crashes, ``sys.exit``, ``os.chdir``, monkeypatching and leaked threads cannot touch
the CLI. It inherits the terminal, so the script's output streams to the user live. The
result comes back pickled over a pipe; the parent polls the pipe and the child's liveness,
so a child that dies (signal, ``os._exit``) is reported instead of hanging.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

POLL_S = 0.2


class RankProcessError(Exception):
    """The rank process died or timed out without sending a result; ``str()`` is one line
    (a crash of the shim adds its traceback). ``exit_code`` is what ``phantora run`` exits with;
    ``status`` is ``failed`` or ``timeout``."""

    def __init__(self, message: str, *, exit_code: int = 1, status: str = "failed") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


@dataclass(kw_only=True)
class RankJob:
    """What the child needs: the script, its argv, and how to build the rank's config."""

    script: str
    argv: list[str] = field(default_factory=list)
    module: bool = False
    """``script`` is a module name, run like ``python -m`` (``phantora run -m``)."""
    gpu: Any
    compute_model: Any
    memory_limit_bytes: int | None = None
    host_time: str = "zero"
    values: Any = None
    """:class:`interpose.values.ValuePolicy` (``None``: the default policy)."""
    rank: int = 0
    world_size: int = 1
    stdout_to_stderr: bool = False
    """Send the script's stdout to stderr (``--json`` keeps stdout for machine-readable rows)."""


def _child(job: RankJob, conn, parent_pid: int) -> None:
    from phantora.lifecycle import child_setup

    child_setup(parent_pid)  # own process group, dies with the parent, default signal handlers
    if job.stdout_to_stderr:
        sys.stdout.flush()
        os.dup2(2, 1)
    try:
        from interpose import RankConfig, run_script
        from interpose.distributed import install as install_distributed
        from phantora.launcher import LaunchSpec, torchrun_env

        # torchrun-style scripts run with one rank too: torchrun's environment and the simulated
        # "nccl" backend, whose collectives on a group of one end at once
        for k, v in torchrun_env(job.rank, LaunchSpec(1, job.world_size)).items():
            os.environ.setdefault(k, v)
        install_distributed()
        cfg = RankConfig(rank=job.rank, world_size=job.world_size, local_rank=job.rank,
                         local_world_size=job.world_size, gpu=job.gpu, compute_model=job.compute_model,
                         memory_limit_bytes=job.memory_limit_bytes, host_time=job.host_time,  # type: ignore[arg-type]
                         **({} if job.values is None else {"values": job.values}))
        result: Any = run_script(job.script, list(job.argv), cfg, module=job.module)
        payload: tuple[str, Any] = ("result", result)
    except BaseException:  # the shim itself failed: still report, never leave the parent waiting
        payload = ("crash", traceback.format_exc())
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        conn.send(payload)
    except Exception:  # an unpicklable result: send what we can explain
        with contextlib.suppress(Exception):
            conn.send(("crash", traceback.format_exc()))
    conn.close()


def prewarm() -> None:
    """Import the shim, torch and ``torch._dynamo`` (FakeTensorMode imports it on first use,
    ~5 s) before forking, so the child starts warm and later forks pay nothing."""
    import torch._dynamo  # noqa: F401

    import interpose.runner  # noqa: F401


def run_rank(job: RankJob, timeout_s: float | None = None) -> Any:
    """Run ``job`` in a forked child; returns its ``RankResult``.

    Raises :class:`RankProcessError` if the child dies without a result, the shim crashes, or
    ``timeout_s`` passes. The child (and everything it started: its process group) is killed on
    every way out, a :class:`KeyboardInterrupt` / :class:`phantora.lifecycle.Interrupted` included.
    """
    from phantora.lifecycle import (
        child_state,
        close_in_children,
        forget,
        raise_if_interrupted,
        signal_name,
        stop_processes,
        track,
    )

    prewarm()
    ctx = mp.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    close_in_children(parent_end)
    sys.stdout.flush()
    sys.stderr.flush()
    proc = ctx.Process(target=_child, args=(job, child_end, os.getpid()), name="phantora-rank0", daemon=True)
    try:
        proc.start()
        track(proc.pid)
        child_end.close()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            raise_if_interrupted()  # a signal during the fork's hooks is swallowed there
            if parent_end.poll(POLL_S):
                try:
                    kind, value = parent_end.recv()
                except EOFError:
                    kind, value = "eof", None
                break
            if child_state(proc.pid)[0] != "running":
                if parent_end.poll(0):
                    continue
                kind, value = "eof", None
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RankProcessError(f"the rank process did not finish within {timeout_s:g} s (--timeout) "
                                       "and was killed", status="timeout")
        if kind == "eof":  # the pipe closed: the process is gone or going
            wait_until = time.monotonic() + 2.0
            while child_state(proc.pid)[0] == "running" and time.monotonic() < wait_until:
                time.sleep(0.01)
        code = child_state(proc.pid)[1]
    except BaseException:
        stop_processes([proc], grace_s=1.0)
        raise
    finally:
        forget(parent_end)
        parent_end.close()
    # a finished child exits by itself; give it a moment, then kill its group (whatever it left behind)
    wait_until = time.monotonic() + 5.0
    while child_state(proc.pid)[0] == "running" and time.monotonic() < wait_until:
        time.sleep(0.01)
    stop_processes([proc], grace_s=1.0)
    if kind == "result":
        return value
    if kind == "crash":
        raise RankProcessError(f"the simulator failed inside the rank process:\n{value}")
    if code is None:
        code = proc.exitcode
    if code is not None and code < 0:
        raise RankProcessError(f"the rank process died of {signal_name(-code)} before reporting a result")
    raise RankProcessError(f"the rank process exited with code {code} before reporting a result",
                           exit_code=code if isinstance(code, int) and code > 0 else 1)
