"""Start one process per simulated rank, torchrun-style, and run the coordinator over them (1..N ranks).

Rank processes are forked from this (warm) process after torch and the shim are imported,
so 128 ranks share those pages instead of importing torch 128 times (~220 MB each).
Each child gets torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
GROUP_RANK, MASTER_ADDR/PORT ...) so scripts written for ``torchrun`` run unchanged, and a
pipe to the coordinator, which runs in this process. A world of one goes the same way: its rank
ends its collectives itself, so the coordinator only watches it (result, death, timeout).

Lifecycle (:mod:`phantora.lifecycle`): every rank leads its own process group, gets SIGKILL
when this process dies, and holds no coordinator-side end of any pipe (they are closed in the
child after the fork), so a rank sees EOF as soon as the coordinator is gone; every way out of
:func:`launch` kills the ranks' groups.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.protocol import Channel, Finished
from phantora.coordinator import AlphaBetaNetwork, CollectiveRow, Coordinator, CoordinatorError
from phantora.coordinator.server import serve, wait_for_exit
from phantora.lifecycle import (
    child_setup,
    child_state,
    close_in_children,
    forget,
    raise_if_interrupted,
    signal_name,
    stop_processes,
    track,
)

if TYPE_CHECKING:
    from netsim.backend import NetworkBackend


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Shape of the simulated job, as torchrun's ``--nnodes`` × ``--nproc-per-node``."""

    nnodes: int
    nproc_per_node: int
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    symmetric: bool = False
    """Run rank 0 only and fold the others onto it (:mod:`phantora.coordinator.symmetric`)."""

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node


def torchrun_env(rank: int, spec: LaunchSpec) -> dict[str, str]:
    """The variables torchrun (elastic agent) sets for worker ``rank``."""
    n = spec.nproc_per_node
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank % n),
        "WORLD_SIZE": str(spec.world_size),
        "LOCAL_WORLD_SIZE": str(n),
        "GROUP_RANK": str(rank // n),
        "GROUP_WORLD_SIZE": str(spec.nnodes),
        "ROLE_RANK": str(rank),
        "ROLE_WORLD_SIZE": str(spec.world_size),
        "ROLE_NAME": "default",
        "MASTER_ADDR": spec.master_addr,
        "MASTER_PORT": str(spec.master_port),
        "TORCHELASTIC_RUN_ID": "phantora",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "OMP_NUM_THREADS": "1",
    }


RankMain = Callable[[int, Channel], tuple[object, str | None]]
"""Body of one rank: gets its rank and coordinator channel, returns ``(result, error traceback or None)``.
It must create the rank's :class:`~interpose.distributed.coordinated.CoordinatedSink` on the channel."""


class LaunchFailed(CoordinatorError):
    """The launch failed (a rank failed, a mismatch, a deadlock, the timeout...); ``results`` holds what
    the ranks that finished had reported, so a failed one-rank run keeps its partial metrics."""

    def __init__(self, e: CoordinatorError, results: dict[int, object]) -> None:
        super().__init__(e.kind, str(e), exit_code=e.exit_code, rank=e.rank)
        self.results = results


@dataclass
class LaunchResult:
    results: dict[int, object]
    collectives: list[CollectiveRow]
    coordinator: Coordinator
    exit_codes: dict[int, int | None] = field(default_factory=dict)
    """Rank → its process's own exit code after it reported (``None``: it did not exit by itself
    within the grace period and was killed)."""

    def teardown_errors(self) -> list[str]:
        """One line per rank whose process did not end cleanly after reporting its result."""
        out = []
        for r, code in sorted(self.exit_codes.items()):
            if code is None:
                out.append(f"rank {r} reported its result but did not exit within {TEARDOWN_S:g} s "
                           "(a non-daemon thread?) and was killed")
            elif code < 0:
                out.append(f"rank {r} reported its result, then died of {signal_name(-code)}")
            elif code != 0:
                out.append(f"rank {r} reported its result, then exited with code {code}")
        return out


TEARDOWN_S = 5.0
"""How long ranks get to exit after reporting before they are killed."""


def _child(rank: int, spec: LaunchSpec, conn: Any, rank_main: RankMain, parent_pid: int) -> None:
    child_setup(parent_pid)  # own process group, dies with the parent, default signal handlers
    # the rank is started daemonic (the parent's multiprocessing kills it at exit), but a rank is a
    # torchrun worker, which may start children of its own (DataLoader workers): multiprocessing
    # refuses children of a daemonic process, so the rank stops calling itself one
    mp.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    os.environ.update(torchrun_env(rank, spec))
    if spec.world_size > 1:  # rank processes share this machine's cores
        with contextlib.suppress(ImportError):
            import torch

            torch.set_num_threads(1)
    ch = Channel(conn)
    try:
        result, error = rank_main(rank, ch)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        result = {"rank": rank, "exit_code": code}
        error = None if code == 0 else f"the script exited with code {code}"
    except BaseException:
        result, error = None, traceback.format_exc()
    with contextlib.suppress(Exception):  # the script's output comes before the summary
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(BrokenPipeError, OSError):
        ch.send(Finished(rank, getattr(result, "end_time_us", 0.0) or 0.0, error, result))


def launch(spec: LaunchSpec, rank_main: RankMain, network: NetworkBackend | None,
           on_start: Callable[[list[int]], None] | None = None, *, timeout_s: float | None = None) -> LaunchResult:
    """Fork ``spec.world_size`` ranks (rank 0 only if ``spec.symmetric``) running ``rank_main`` and
    coordinate them until all finish, at most ``timeout_s`` wall seconds. ``network`` is ``None`` only
    for a world of one, whose rank submits nothing to it.

    Each rank leads its own process group and dies with this process (:mod:`phantora.lifecycle`);
    on every way out of here (success, error, timeout, a signal turned into an exception) the
    ranks' groups are killed. Raises :class:`LaunchFailed` (a :class:`~phantora.coordinator.CoordinatorError`:
    the failing rank's traceback and exit code, the mismatch, the deadlock report or the timeout)
    after stopping every rank.
    """
    if network is None and spec.world_size > 1:
        raise ValueError(f"{spec.world_size} ranks need a network")
    ctx = mp.get_context("fork")
    # a world of one never submits a collective (its LocalSink ends them at once): any network will do
    coord = Coordinator(spec.world_size, network or AlphaBetaNetwork(gpus_per_host=1), symmetric=spec.symmetric)
    conns: dict[int, Any] = {}
    procs: list[Any] = []
    me = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for r in sorted(coord.ranks):
            parent_end, child_end = ctx.Pipe(duplex=True)
            close_in_children(parent_end)  # no rank holds the coordinator's end of any channel
            conns[r] = parent_end
            p = ctx.Process(target=_child, args=(r, spec, child_end, rank_main, me), name=f"phantora-rank{r}",
                            daemon=True)
            p.start()
            assert p.pid is not None
            track(p.pid)
            child_end.close()
            procs.append(p)
            raise_if_interrupted()  # a signal during the fork's hooks is swallowed there
        if on_start is not None:
            on_start([p.pid for p in procs])
        by_rank = dict(zip(sorted(coord.ranks), procs, strict=True))
        results = serve(coord, conns, alive=lambda r: child_state(by_rank[r].pid)[0] == "running",
                        exitcode=lambda r: child_state(by_rank[r].pid)[1], timeout_s=timeout_s)
    except BaseException as e:
        # aborted ranks leave at once; give them a moment to flush their output, then kill the groups
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(child_state(p.pid)[0] == "running" for p in procs):
            time.sleep(0.02)
        stop_processes(procs, grace_s=1.0)
        if isinstance(e, CoordinatorError) and not isinstance(e, LaunchFailed):
            reported = {r: st.result for r, st in coord.ranks.items() if st.result is not None}
            raise LaunchFailed(e, reported) from None
        raise
    finally:
        for c in conns.values():
            forget(c)
            c.close()
    codes = wait_for_exit(procs, TEARDOWN_S)
    exit_codes = {r: codes.get(p.pid) for r, p in by_rank.items()}
    return LaunchResult(results, coord.rows, coord, exit_codes)
