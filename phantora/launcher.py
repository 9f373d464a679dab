"""Start one process per simulated rank, torchrun-style, and run the coordinator over them.

Rank processes are forked from this (warm) process after torch and the shim are imported,
so 128 ranks share those pages instead of importing torch 128 times (~220 MB each).
Each child gets torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
GROUP_RANK, MASTER_ADDR/PORT ...) so scripts written for ``torchrun`` run unchanged, and a
pipe to the coordinator, which runs in this process.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from interpose.protocol import Channel
from phantora.coordinator.core import CollectiveRow, Coordinator
from phantora.coordinator.network import NetworkTimer
from phantora.coordinator.server import serve, wait_for_exit


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


@dataclass
class LaunchResult:
    results: dict[int, object]
    collectives: list[CollectiveRow]
    coordinator: Coordinator


def _child(rank: int, spec: LaunchSpec, conn, rank_main: RankMain) -> None:
    os.environ.update(torchrun_env(rank, spec))
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    ch = Channel(conn)
    try:
        result, error = rank_main(rank, ch)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        result, error = None, None if code == 0 else f"SystemExit({e.code!r})"
    except BaseException:
        result, error = None, traceback.format_exc()
    from interpose.protocol import Finished

    with contextlib.suppress(BrokenPipeError, OSError):
        ch.send(Finished(rank, getattr(result, "end_time_us", 0.0) or 0.0, error, result))


def launch(spec: LaunchSpec, rank_main: RankMain, network: NetworkTimer,
           on_start: Callable[[list[int]], None] | None = None) -> LaunchResult:
    """Fork ``spec.world_size`` ranks (rank 0 only if ``spec.symmetric``) running ``rank_main`` and
    coordinate them until all finish.

    Raises :class:`~phantora.coordinator.core.CoordinatorError` (with the failing rank's
    traceback, the mismatch or the deadlock report) after stopping every rank.
    """
    ctx = mp.get_context("fork")
    coord = Coordinator(spec.world_size, network, symmetric=spec.symmetric)
    conns = {}
    procs = []
    sys.stdout.flush()
    sys.stderr.flush()
    for r in sorted(coord.ranks):
        parent_end, child_end = ctx.Pipe(duplex=True)
        p = ctx.Process(target=_child, args=(r, spec, child_end, rank_main), name=f"phantora-rank{r}",
                        daemon=True)
        p.start()
        child_end.close()
        conns[r] = parent_end
        procs.append(p)
    if on_start is not None:
        on_start([p.pid for p in procs])
    try:
        by_rank = dict(zip(sorted(coord.ranks), procs, strict=True))
        results = serve(coord, conns, alive=lambda r: by_rank[r].is_alive())
    finally:
        wait_for_exit(procs)
        for c in conns.values():
            c.close()
    return LaunchResult(results, coord.rows, coord)
