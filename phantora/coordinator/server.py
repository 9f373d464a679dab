"""Run the :class:`~phantora.coordinator.core.Coordinator` over the ranks' pipes.

One loop in the launching process: wait for any rank's pipe to be readable, apply what
arrived, send the replies. A pipe that closes without :class:`Finished` means the rank
process died. Errors (failed rank, mismatch, deadlock) abort every rank and are re-raised.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from interpose.protocol import Finished
from phantora.coordinator.core import Coordinator, CoordinatorError


def serve(coord: Coordinator, conns: dict[int, Connection], alive: Callable[[int], bool],
          poll_s: float = 0.5) -> dict[int, object]:
    """Drive ``coord`` until every rank finished; return each rank's ``Finished.result``."""
    open_conns = dict(conns)
    results: dict[int, object] = {}
    by_conn = {c: r for r, c in conns.items()}
    try:
        while open_conns:
            ready = wait(list(open_conns.values()), timeout=poll_s)
            batch: list[tuple[float, int, object]] = []
            for c in ready:
                r = by_conn[c]  # type: ignore[index]
                try:
                    while c.poll():  # type: ignore[union-attr]
                        msg = c.recv()  # type: ignore[union-attr]
                        batch.append((getattr(msg, "clock_us", getattr(msg, "host_us", 0.0)), r, msg))
                        if isinstance(msg, Finished):
                            results[r] = msg.result
                            del open_conns[r]
                            break
                except (EOFError, OSError):
                    open_conns.pop(r, None)
                    if r not in results:
                        raise CoordinatorError("rank_failed", f"rank {r} died without reporting "
                                               f"(killed by a signal or os._exit)") from None
            # a rank's own messages keep their order; ranks are interleaved by (time, rank)
            for _, _, msg in _stable_merge(batch):
                coord.handle(msg)
            _flush(coord, conns)
            if not ready:
                for r in list(open_conns):
                    if not alive(r):
                        raise CoordinatorError("rank_failed", f"rank {r} died without reporting")
    except CoordinatorError as e:
        coord.abort_all(str(e).splitlines()[0])
        _flush(coord, conns)
        raise
    return results


def _stable_merge(batch: list[tuple[float, int, object]]) -> list[tuple[float, int, object]]:
    """Merge per-rank message runs by (time, rank) without reordering any one rank's messages."""
    per_rank: dict[int, list[tuple[float, int, object]]] = {}
    for item in batch:
        per_rank.setdefault(item[1], []).append(item)
    out = []
    heads = {r: 0 for r in per_rank}
    while heads:
        r = min(heads, key=lambda r: (per_rank[r][heads[r]][0], r))
        out.append(per_rank[r][heads[r]])
        heads[r] += 1
        if heads[r] == len(per_rank[r]):
            del heads[r]
    return out


def _flush(coord: Coordinator, conns: dict[int, Connection]) -> None:
    for r, msg in coord.outbox:
        with contextlib.suppress(BrokenPipeError, OSError):
            conns[r].send(msg)
    coord.outbox.clear()


def wait_for_exit(procs: list, timeout_s: float = 5.0) -> None:
    """Give rank processes ``timeout_s`` to exit, then terminate and finally kill the stragglers."""
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(1.0)
        if p.is_alive():
            p.kill()
            p.join(1.0)
