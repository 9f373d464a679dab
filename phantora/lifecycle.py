"""Process lifecycle: rank processes die with the run, on every exit path.

What ``torchrun`` and Slurm users expect, and what this module provides:

* **Each child in its own session** (:func:`child_setup`, called first thing in every forked
  rank): ``setsid()`` makes the rank the leader of a new process group, so the parent can kill
  the rank *and everything it started* (DataLoader workers...) with one ``killpg``, and Ctrl-C
  at the terminal reaches only the parent, which then stops the ranks itself (torch elastic
  starts its workers with ``start_new_session=True`` for the same reason).
* **Parent-death signal**: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux), so a rank dies even
  when its parent is ``SIGKILL``-ed and can run no cleanup at all.
* **No inherited coordinator ends**: objects registered with :func:`close_in_children` (the
  parent's ends of every rank's pipe, the results directory's lock) are closed in every forked
  child, so a rank sees EOF when the coordinator goes away and never holds another rank's channel.
* **Signals in the parent** (:func:`handle_signals`): SIGTERM, SIGINT and SIGHUP kill every tracked
  child group and raise :class:`Interrupted`, whose :attr:`~Interrupted.exit_code` is
  128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports it.

``python -m phantora.lifecycle --parent PID -- CMD...`` runs ``CMD`` with a parent-death signal
(SIGTERM) tied to process ``PID``: ``phantora sweep`` starts its points that way.

This module never imports torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The parent got a terminating signal; every tracked child group has been killed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# ----------------------------------------------------------------------------- parent-death signal

_libc: Any = None


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) exits (Linux only)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:  # the process's own symbols include libc's (no ldconfig run in a fresh fork)
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Set the parent-death signal, and exit at once if the parent already died before it was set."""
    set_parent_death_signal(sig)
    if os.getppid() != parent_pid:
        os._exit(128 + int(sig))


# ----------------------------------------------------------------------------- fds closed in children

_close_lock = threading.Lock()
_to_close: dict[int, Any] = {}


def close_in_children(obj: Any) -> None:
    """Close ``obj`` (anything with ``close()``) in every process forked from now on."""
    with _close_lock:
        _to_close[id(obj)] = obj


class LockHeld(Exception):
    """Another process holds the lock; ``str()`` is its pid as it wrote it (``?`` if unreadable)."""


def pid_lock(path: Path):
    """Open ``path`` and take an exclusive ``fcntl`` lock on it without waiting, write this pid into it and
    keep it out of forked children; returns the open file (the lock lasts while it is open). Raises
    :class:`LockHeld` with the holder's pid, or ``OSError`` if the file cannot be opened."""
    import fcntl

    f = open(path, "a+")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise LockHeld(holder) from None
    close_in_children(f)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def take_lock(path: Path, *, where: str, busy: str, error: type[Exception]) -> Any:
    """:func:`pid_lock` with its two failures as one-line ``error``s naming ``where``: held (``busy``
    says by what, with ``{pid}``: ``phantora run (pid {pid}) is writing there``) or not writable."""
    try:
        return pid_lock(path)
    except LockHeld as e:
        raise error(f"{where}: another {busy.format(pid=e)}; wait for it or use another --out") from None
    except OSError as e:
        raise error(f"{where}: not writable ({e.strerror or e})") from None


def forget(obj: Any) -> None:
    """Stop closing ``obj`` in children (call when the parent closes it)."""
    with _close_lock:
        _to_close.pop(id(obj), None)


def _after_fork_in_child() -> None:
    global _close_lock, _handlers_installed
    _close_lock = threading.Lock()  # another thread may have held it at the fork
    objs = list(_to_close.values())
    _to_close.clear()
    _groups.clear()
    for obj in objs:
        with contextlib.suppress(Exception):
            obj.close()
    if _handlers_installed:  # the child gets the handlers the parent had before handle_signals()
        _restore_default_handlers()
        _saved.clear()
        _handlers_installed = False


# ----------------------------------------------------------------------------- child process groups

_groups: set[int] = set()
"""Pids of tracked children; each leads its own session and process group."""


def child_setup(parent_pid: int) -> None:
    """First thing in a forked rank: own session/group, parent-death signal (the parent's signal
    handlers were already put back by the fork hook)."""
    with contextlib.suppress(OSError):
        os.setsid()
    die_with_parent(parent_pid, signal.SIGKILL)


def track(pid: int) -> None:
    """Kill ``pid``'s process group on :func:`kill_tracked` (and when a handled signal arrives)."""
    _groups.add(pid)


def untrack(pid: int) -> None:
    _groups.discard(pid)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` and ``pid`` itself (it may not have called setsid yet).

    Only for a child that is not reaped yet (running or a zombie), so ``pid`` cannot have been reused.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_tracked(sig: int = signal.SIGKILL) -> None:
    for pid in list(_groups):
        if child_state(pid)[0] != "reaped":
            kill_group(pid, sig)


def child_state(pid: int) -> tuple[str, int | None]:
    """``("running", None)``, ``("exited", code)`` (a zombie, not reaped: negative code = killed by
    that signal) or ``("reaped", None)`` for a child of this process; never reaps it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "reaped", None
    if info is None or info.si_pid == 0:
        return "running", None
    code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    return "exited", code


def stop_processes(procs: list, grace_s: float = 2.0) -> None:
    """SIGTERM the groups of ``procs`` (``multiprocessing.Process``) still running, SIGKILL every group
    after at most ``grace_s``, then reap them.

    Groups are killed while their leaders are still unreaped (running or zombies), so a pid is never
    reused under us, and even a leader that already exited has its group killed: nothing a rank
    started outlives the run.
    """
    pids = [p.pid for p in procs if p.pid is not None]
    for pid in pids:
        if child_state(pid)[0] == "running":
            kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(child_state(pid)[0] == "running" for pid in pids):
        time.sleep(0.02)
    for pid in pids:
        if child_state(pid)[0] != "reaped":
            kill_group(pid, signal.SIGKILL)
    for p in procs:
        p.join(5.0)
    for pid in pids:
        untrack(pid)


# ----------------------------------------------------------------------------- signals in the parent

_handlers_installed = False
_interrupted: int | None = None
_saved: dict[int, Any] = {}
"""The handlers :func:`handle_signals` replaced; forked children get them back."""


def _restore_default_handlers() -> None:
    for s, h in _saved.items():
        with contextlib.suppress(ValueError, OSError, TypeError):  # not the main thread
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _on_signal(signum: int, frame: Any) -> None:
    global _interrupted
    if _interrupted is not None:  # a second signal while cleaning up: leave now
        kill_tracked(signal.SIGKILL)
        os._exit(128 + _interrupted)
    _interrupted = signum
    kill_tracked(signal.SIGTERM)
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` if a handled signal arrived. The handler raises at once, but Python
    swallows an exception raised inside an ``os.fork`` hook, a ``__del__`` or a weakref callback
    ("Exception ignored in ..."), so every wait loop of the launcher and the sweep also checks here."""
    if _interrupted is not None:
        raise Interrupted(_interrupted)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGINT/SIGHUP into :class:`Interrupted` (after killing every tracked group).

    A signal this process inherited as ignored (``nohup``, a background job of a script) stays
    ignored. Only in the main thread; elsewhere (a test runner's worker thread) this does nothing.
    """
    global _handlers_installed, _interrupted
    if threading.current_thread() is not threading.main_thread() or _handlers_installed:
        yield
        return
    _saved.clear()
    _interrupted = None
    for s in HANDLED_SIGNALS:
        old = signal.getsignal(s)
        if old == signal.SIG_IGN:
            continue
        _saved[s] = old
        signal.signal(s, _on_signal)
    _handlers_installed = True
    unraisable = sys.unraisablehook

    def quiet(info: Any) -> None:  # an Interrupted Python swallowed is re-raised by raise_if_interrupted()
        if not isinstance(info.exc_value, Interrupted):
            unraisable(info)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = unraisable
        _restore_default_handlers()
        _saved.clear()
        _handlers_installed = False
        _interrupted = None


os.register_at_fork(after_in_child=_after_fork_in_child)


# ----------------------------------------------------------------------------- exec wrapper


def main(argv: list[str] | None = None) -> None:
    """``python -m phantora.lifecycle --parent PID -- CMD...``: exec CMD with SIGTERM as its
    parent-death signal (tied to PID; exits 143 if PID is no longer the parent)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--parent" or args[2] != "--":
        print("usage: python -m phantora.lifecycle --parent PID -- CMD [ARGS...]", file=sys.stderr)
        sys.exit(2)
    die_with_parent(int(args[1]), signal.SIGTERM)
    cmd = args[3:]
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        print(f"phantora: cannot run {cmd[0]!r}: {e.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
