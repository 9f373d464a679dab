"""Local cache of on-demand profile entries, shared by every rank process of a run.

SQLite in WAL mode: many readers and one writer at a time without corrupting
the file, and a writer waits (``busy_timeout``) instead of failing while
another rank writes. Entries are keyed by (GPU, signature key); a second write
of the same key replaces the first.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from profiles.store import ProfileEntry

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (gpu TEXT NOT NULL, key TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (gpu, key))"


class ProfileCache:
    """A SQLite file of :class:`ProfileEntry` rows; safe for concurrent processes."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._con.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute(_SCHEMA)

    def get(self, gpu: str, key: str) -> ProfileEntry | None:
        row = self._con.execute("SELECT entry FROM entries WHERE gpu=? AND key=?", (gpu, key)).fetchone()
        return ProfileEntry(**json.loads(row[0])) if row else None

    def put(self, gpu: str, entry: ProfileEntry) -> None:
        self.put_many(gpu, [entry])

    def put_many(self, gpu: str, entries: list[ProfileEntry]) -> None:
        rows = [(gpu, e.key, e.to_json()) for e in entries]
        with self._con:  # one transaction
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany("INSERT OR REPLACE INTO entries (gpu, key, entry) VALUES (?, ?, ?)", rows)

    def entries(self, gpu: str) -> dict[str, ProfileEntry]:
        rows = self._con.execute("SELECT key, entry FROM entries WHERE gpu=?", (gpu,)).fetchall()
        return {k: ProfileEntry(**json.loads(v)) for k, v in rows}

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        self._con.close()
