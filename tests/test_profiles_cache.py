"""The SQLite WAL profile cache: shared by several processes writing at once."""

from __future__ import annotations

import multiprocessing as mp

from profiles.cache import ProfileCache
from profiles.store import ProfileEntry


def _writer(path: str, worker: int, n: int) -> None:
    cache = ProfileCache(path)
    for i in range(n):
        e = ProfileEntry(key=f"k{worker}-{i}", op="aten.mm.default", family="matmul", dtype="bfloat16", dur_us=float(i))
        cache.put("h100", e)
        assert cache.get("h100", f"k{worker}-{i}") is not None
        cache.entries("h100")  # readers run alongside writers
    cache.close()


def test_round_trip_and_gpu_separation(tmp_path):
    c = ProfileCache(tmp_path / "c.sqlite")
    e = ProfileEntry(key="k", op="aten.mm.default", family="matmul", dtype="bfloat16", dur_us=3.5, launch_us=4.0)
    c.put("h100", e)
    assert c.get("h100", "k") == e
    assert c.get("h200", "k") is None
    c.put("h100", ProfileEntry(key="k", op="aten.mm.default", family="matmul", dtype="bfloat16", dur_us=7.0))
    assert c.get("h100", "k").dur_us == 7.0 and len(c) == 1


def test_concurrent_processes_do_not_lose_or_corrupt_entries(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    got = ProfileCache(path).entries("h100")
    assert len(got) == 160
    assert got["k3-39"].dur_us == 39.0
