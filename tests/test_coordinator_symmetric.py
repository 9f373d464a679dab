"""Symmetric (folded) runs: rank 0 executes, sibling groups load the network (``--symmetric``)."""

from __future__ import annotations

import pytest

from common.protocol import CollectiveCall, Finished, Issue, Resolved
from netsim.alpha_beta import AlphaBetaNetwork
from phantora.coordinator import Coordinator, CoordinatorError
from phantora.coordinator.symmetric import NotSymmetricError, sibling_offsets


def test_mesh_dimension_families_tile_the_world() -> None:
    # (dp=2, tp=4) row-major mesh over 8 ranks
    assert sibling_offsets((0, 1, 2, 3), 8) == (4,), "tp groups {0..3}, {4..7}"
    assert sibling_offsets((0, 4), 8) == (1, 2, 3), "dp groups {0,4}, {1,5}, {2,6}, {3,7}"
    assert sibling_offsets(tuple(range(8)), 8) == (), "the world group has no siblings"
    # (dp=2, cp=2, tp=2): the flattened (dp, cp) slice of rank 0 is {0, 2, 4, 6}
    assert sibling_offsets((0, 2, 4, 6), 8) == (1,)


def test_groups_that_do_not_tile_are_refused() -> None:
    with pytest.raises(NotSymmetricError, match=r"rank 2 has no copy"):
        sibling_offsets((0, 1, 3), 4)
    with pytest.raises(NotSymmetricError):
        sibling_offsets((0, 1, 2), 8)  # 8 ranks cannot be cut into groups of 3


class Recorder(AlphaBetaNetwork):
    """Every submission ends 10 us after it starts; records (tag, ranks as submitted)."""

    def __init__(self) -> None:
        super().__init__(gpus_per_host=8, latency_us=10.0, nvlink_gbps=float("inf"), nic_gbps=float("inf"))
        self.submitted: list[tuple[str, tuple[int, ...]]] = []

    def submit_collective(self, kind, ranks, nbytes, start_ns, tag=None, *, matrix=None) -> int:
        self.submitted.append((tag, tuple(ranks)))
        return super().submit_collective(kind, ranks, nbytes, start_ns, tag, matrix=matrix)


def _call(key: str, ranks: tuple[int, ...], kind: str = "all_reduce", root: int = -1) -> CollectiveCall:
    return CollectiveCall(key=key, kind=kind, group=key.split("#")[0], ranks=ranks, nbytes=1 << 20,
                          dtype="float32", root=root, call_site="train.py:7")


def test_rank_zero_alone_matches_and_siblings_load_the_network() -> None:
    net = Recorder()
    c = Coordinator(8, net, symmetric=True)
    assert set(c.ranks) == {0}
    c.handle(Issue(0, 0, _call("1#0", (0, 4), kind="broadcast", root=4), host_us=0.0, ready_us=5.0))
    c.handle(Finished(0, 100.0))
    assert net.submitted == [("1#0", (4, 0)), ("1#0@+1", (5, 1)), ("1#0@+2", (6, 2)),
                             ("1#0@+3", (7, 3))], "roots are translated with their group and lead it"
    (res,) = [m for r, m in c.outbox if r == 0 and isinstance(m, Resolved)]
    assert (res.start_us, res.end_us) == (5.0, 15.0)
    assert [row.key for row in c.rows] == ["1#0"], "sibling copies are not results"
    assert c.finished()


def test_point_to_point_and_odd_groups_are_one_clear_error() -> None:
    c = Coordinator(4, Recorder(), symmetric=True)
    with pytest.raises(CoordinatorError, match=r"--symmetric: send at train.py:7 is point-to-point") as e:
        c.handle(Issue(0, 0, _call("p2p:0-1#0", (0, 1), kind="send"), host_us=0.0, ready_us=0.0))
    assert e.value.kind == "not_symmetric"
    c = Coordinator(4, Recorder(), symmetric=True)
    with pytest.raises(CoordinatorError, match=r"group of ranks \[0, 1, 3\]"):
        c.handle(Issue(0, 0, _call("5#0", (0, 1, 3)), host_us=0.0, ready_us=0.0))
