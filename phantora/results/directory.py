"""The results directory of one run: claimed before anything is simulated, so it can never mislead.

:class:`ResultsDir` creates it, checks it is writable, locks it against a concurrent writer,
refuses a non-empty directory that is not a phantora result unless ``--overwrite``, removes the
previous run's phantora files and writes ``summary.json`` with ``status: running`` at once; the
run later rewrites ``summary.json`` last with ``complete``, ``failed``, ``interrupted`` or ``timeout``
(``docs/reliability.md``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phantora.results.files import write_json_atomic

PHANTORA_FILES = ("summary.json", "ops.parquet", "trace.json", "missing_signatures.jsonl", "op_trace.gz", "op_times.jsonl",
                  "collectives.parquet", "breakdown.parquet")
"""Files a run writes; a new run into the same directory removes the previous run's first."""
LOCK_FILE = ".phantora.lock"
STATUSES = ("running", "complete", "failed", "interrupted", "timeout")


class ResultsDirError(Exception):
    """A results directory that cannot be used; ``str()`` is the one line to show the user."""


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in PHANTORA_FILES)


def is_phantora_result(path: Path) -> bool:
    """Whether ``path`` holds a (possibly unfinished) phantora run: a ``summary.json`` of ours."""
    try:
        data = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("status") in STATUSES or {"versions", "scenario"} <= set(data))


class ResultsDir:
    """The output directory of one run, claimed for the run's whole duration.

    :meth:`claim` (before simulating): create it, check it is writable, take an exclusive
    ``fcntl`` lock (``.phantora.lock``; a second run into the same directory is refused while the
    first holds it), refuse a non-empty directory that is not a phantora result unless
    ``overwrite``, delete the previous run's phantora files (other files are left alone), and write
    ``summary.json`` with ``status: running``. The lock is released by :meth:`release` or when the
    process ends; rank processes forked meanwhile do not hold it.
    """

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._lock: Any = None

    def claim(self, running: Mapping[str, Any] | None = None) -> ResultsDir:
        from phantora.lifecycle import take_lock

        p = self.path
        where = f"--out {p}"
        if p.exists() and not p.is_dir():
            raise ResultsDirError(f"{where}: exists and is not a directory")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultsDirError(f"{where}: cannot create the directory ({e.strerror or e})") from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise ResultsDirError(f"{where}: not writable")
        self._lock = take_lock(p / LOCK_FILE, where=where, busy="phantora run (pid {pid}) is writing there",
                               error=ResultsDirError)
        try:
            foreign = sorted(e.name for e in p.iterdir()
                             if e.name != LOCK_FILE and e.name not in PHANTORA_FILES and not _is_tmp(e.name))
            if foreign and not self.overwrite and not is_phantora_result(p):
                shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise ResultsDirError(f"{where}: not empty and not a phantora results directory (holds {shown}); "
                                      "use --overwrite to write into it anyway, or another --out")
            for entry in p.iterdir():  # the previous run's files must not mix with this run's
                if entry.name in PHANTORA_FILES or _is_tmp(entry.name):
                    entry.unlink()
            write_json_atomic(p / "summary.json", {"status": "running", "pid": os.getpid(),
                                                   "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "command": sys.argv, **(running or {})})
        except ResultsDirError:
            self.release()
            raise
        except OSError as e:
            self.release()
            raise ResultsDirError(f"{where}: cannot write there ({e.strerror or e})") from None
        return self

    def release(self) -> None:
        from phantora.lifecycle import forget

        if self._lock is not None:
            forget(self._lock)
            self._lock.close()
            self._lock = None

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json_atomic(self.path / "summary.json", dict(summary))

    def __enter__(self) -> ResultsDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def load_summary(out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / "summary.json").read_text())
