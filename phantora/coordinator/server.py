"""Run the :class:`~phantora.coordinator.core.Coordinator` over the ranks' pipes.

One loop in the launching process: wait for any rank's pipe to be readable, apply what
arrived, send the replies. A pipe that closes without :class:`Finished` means the rank
process died. Errors (failed rank, mismatch, deadlock) abort every rank and are re-raised.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from common.protocol import CoordinatorMessage, FailureKind, Finished, RankMessage, message_time_us
from phantora.coordinator.core import Coordinator, CoordinatorError


def serve(coord: Coordinator, conns: dict[int, Connection], alive: Callable[[int], bool],
          poll_s: float = 0.5, *, exitcode: Callable[[int], int | None] | None = None,
          timeout_s: float | None = None) -> dict[int, object]:
    """Drive ``coord`` until every rank finished; return each rank's ``Finished.result``.

    ``exitcode(rank)`` (optional) gives a dead rank process's exit code, for the error message;
    ``timeout_s`` is the run's wall-clock limit (a ``timeout`` :class:`CoordinatorError` past it).
    """
    open_conns = dict(conns)
    results: dict[int, object] = {}
    by_conn = {c: r for r, c in conns.items()}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    from phantora.lifecycle import raise_if_interrupted

    try:
        while open_conns:
            raise_if_interrupted()
            wait_s = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
            ready = wait(list(open_conns.values()), timeout=wait_s)
            batch: list[tuple[float, int, RankMessage]] = []
            for c in ready:
                assert isinstance(c, Connection)  # wait() returns what it was given: the pipes
                r = by_conn[c]
                try:
                    while c.poll():
                        msg: RankMessage = c.recv()
                        batch.append((message_time_us(msg), r, msg))
                        if isinstance(msg, Finished):
                            results[r] = msg.result
                            del open_conns[r]
                            break
                except (EOFError, OSError):
                    open_conns.pop(r, None)
                    if r not in results:
                        raise _died(r, exitcode) from None
            # a rank's own messages keep their order; ranks are interleaved by (time, rank)
            for _, _, msg in _stable_merge(batch):
                coord.handle(msg)
            _flush(coord, conns)
            if not ready:
                for r in list(open_conns):
                    if not alive(r):
                        raise _died(r, exitcode)
            if deadline is not None and open_conns and time.monotonic() >= deadline:
                left = ", ".join(str(r) for r in sorted(open_conns))
                raise CoordinatorError(FailureKind.TIMEOUT, f"the run did not finish within {timeout_s:g} s (--timeout); "
                                       f"rank(s) {left} still running were killed")
    except CoordinatorError as e:
        coord.abort_all(str(e).splitlines()[0])
        _flush(coord, conns)
        raise
    return results


def _died(rank: int, exitcode: Callable[[int], int | None] | None) -> CoordinatorError:
    """The error for a rank whose pipe closed without :class:`Finished`."""
    code = None
    if exitcode is not None:
        deadline = time.monotonic() + 1.0  # the pipe closes a moment before the process is reaped
        while (code := exitcode(rank)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
    if code is not None and code < 0:
        try:
            how = f"died of {signal.Signals(-code).name}"
        except ValueError:
            how = f"died of signal {-code}"
        from phantora.run.memory import kill_hint  # SIGKILL: most likely the kernel's OOM killer

        return CoordinatorError(FailureKind.RANK_FAILED, f"rank {rank} {how} without reporting{kill_hint(code)}",
                                rank=rank)
    if code is not None:
        return CoordinatorError(FailureKind.RANK_FAILED, f"rank {rank} exited with code {code} without reporting "
                                "(os._exit?)", exit_code=code, rank=rank)
    return CoordinatorError(FailureKind.RANK_FAILED, f"rank {rank} died without reporting (killed by a signal or "
                            "os._exit)", rank=rank)


def _stable_merge(batch: list[tuple[float, int, RankMessage]]) -> list[tuple[float, int, RankMessage]]:
    """Merge per-rank message runs by (time, rank) without reordering any one rank's messages."""
    per_rank: dict[int, list[tuple[float, int, RankMessage]]] = {}
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
    msg: CoordinatorMessage
    for r, msg in coord.outbox:
        with contextlib.suppress(BrokenPipeError, OSError):
            conns[r].send(msg)
    coord.outbox.clear()


def wait_for_exit(procs: list, timeout_s: float = 5.0) -> dict[int, int | None]:
    """Give rank processes ``timeout_s`` to exit, then stop the stragglers and everything every rank
    started (its process group: SIGTERM, then SIGKILL; :func:`phantora.lifecycle.stop_processes`).

    Returns each process's own exit code by pid (negative: killed by that signal), ``None`` for one
    that had not exited by itself when it was stopped.
    """
    from phantora.lifecycle import child_state, stop_processes

    deadline = time.monotonic() + timeout_s
    pids = [p.pid for p in procs if p.pid is not None]
    while time.monotonic() < deadline and any(child_state(pid)[0] == "running" for pid in pids):
        time.sleep(0.02)
    before = {pid: child_state(pid) for pid in pids}
    stop_processes(procs, grace_s=1.0)
    codes: dict[int, int | None] = {}
    for p in procs:
        state, code = before.get(p.pid, ("reaped", None))
        # "reaped": multiprocessing's own cleanup collected it, after it exited by itself
        codes[p.pid] = code if state == "exited" else (p.exitcode if state == "reaped" else None)
    return codes
