"""Multi-process runs of small CPU scripts under the launcher + coordinator: success,
a raising rank, mismatched collectives, a deadlock — each must end within seconds."""

from __future__ import annotations

import pytest

from netsim.alpha_beta import AlphaBetaNetwork
from phantora.coordinator import CoordinatorError
from phantora.launcher import LaunchSpec, launch, torchrun_env
from phantora.run import plain


def run(repo_root, name, nnodes=2, nproc=2):
    script = str(repo_root / "tests" / "data" / "multirank" / f"{name}.py")
    return launch(LaunchSpec(nnodes, nproc), plain(script, []), AlphaBetaNetwork(gpus_per_host=nproc))


def test_torchrun_env():
    env = torchrun_env(5, LaunchSpec(2, 4))
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["GROUP_RANK"]) == (
        "5", "1", "8", "4", "1")
    assert env["MASTER_ADDR"] and env["MASTER_PORT"]


def test_allreduce_run_matches_and_times(repo_root):
    res = run(repo_root, "allreduce_ok")
    assert sorted(res.results) == [0, 1, 2, 3]
    kinds = [r.kind for r in res.collectives]
    assert kinds == ["all_reduce", "all_reduce", "barrier"]
    first, second = res.collectives[:2]
    assert second.start_us == pytest.approx(first.end_us), "host waits for the first before issuing the second"
    # 1 MiB, 4 ranks on 2 hosts: 10 us + 1.5 * 1 MiB / 50 GB/s, to the network's 1 ns (netsim times are whole ns)
    assert first.end_us - first.start_us == pytest.approx(10 + 1.5 * 2**20 / 50e3, abs=1e-3)


def test_p2p_ring(repo_root):
    res = run(repo_root, "p2p_ring")
    assert [r.kind for r in res.collectives].count("send_recv") == 4


def test_raising_rank_reports_traceback(repo_root):
    with pytest.raises(CoordinatorError) as e:
        run(repo_root, "raises")
    assert e.value.kind == "rank_failed"
    assert "rank 1 failed" in str(e.value) and "ValueError: boom on rank 1" in str(e.value)


def test_mismatch_names_ranks_and_sites(repo_root):
    with pytest.raises(CoordinatorError) as e:
        run(repo_root, "mismatch")
    msg = str(e.value)
    assert e.value.kind == "mismatch"
    assert "all_reduce" in msg and "broadcast" in msg and "mismatch.py:7" in msg and "mismatch.py:9" in msg


def test_deadlock_reported_with_each_rank_state(repo_root):
    with pytest.raises(CoordinatorError) as e:
        run(repo_root, "deadlock")
    msg = str(e.value)
    assert e.value.kind == "deadlock"
    for r in range(4):
        assert f"rank {r}: blocked" in msg
    assert "deadlock.py:8" in msg and "not issued by rank(s)" in msg


def test_same_run_twice_gives_identical_times(repo_root):
    a = [(r.key, r.start_us, r.end_us) for r in run(repo_root, "p2p_ring").collectives]
    b = [(r.key, r.start_us, r.end_us) for r in run(repo_root, "p2p_ring").collectives]
    assert sorted(a) == sorted(b)
