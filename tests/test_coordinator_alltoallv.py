"""Uneven all-to-alls through the coordinator: every member's send splits make the traffic matrix
the network times, and the collectives table shows it."""

from __future__ import annotations

from common.protocol import CollectiveCall, Finished, Issue
from netsim.alpha_beta import AlphaBetaNetwork
from phantora.coordinator import Coordinator
from phantora.coordinator.calls import with_traffic_matrix


class Recorder(AlphaBetaNetwork):
    def __init__(self) -> None:
        super().__init__(gpus_per_host=8, nvlink_gbps=100.0, latency_us=0.0)
        self.matrices: list[list[list[float]] | None] = []

    def submit_collective(self, kind, ranks, nbytes, start_ns, tag=None, *, matrix=None) -> int:
        self.matrices.append(matrix)
        return super().submit_collective(kind, ranks, nbytes, start_ns, tag, matrix=matrix)


def a2a(splits, key="0#0", ranks=(0, 1, 2, 3)):
    return CollectiveCall(key=key, kind="all_to_all", group="0", ranks=ranks, nbytes=sum(splits),
                          dtype="bfloat16", call_site="moe.py:7", splits=tuple(splits))


SKEW = {0: (700, 100, 100, 100), 1: (600, 200, 100, 100), 2: (500, 300, 100, 100), 3: (400, 400, 100, 100)}


def run(world, issued, symmetric=False):
    net = Recorder()
    c = Coordinator(world, net, symmetric=symmetric)
    for r, splits in issued.items():
        c.handle(Issue(r, 0, a2a(splits), host_us=0.0, ready_us=0.0))
    for r in issued:
        c.handle(Finished(r, 1.0))
    return net, c


def test_matrix_is_every_members_send_splits():
    net, c = run(4, SKEW)
    assert net.matrices[0] == [list(SKEW[r]) for r in range(4)]
    row = c.rows[0]
    assert row.splits == tuple(SKEW[r] for r in range(4))
    assert row.bytes == 700 + 600 + 500 + 400, "the largest per-rank buffer: rank 0 receives 2200 B"


def test_symmetric_run_assumes_every_member_sends_what_rank_0_sends():
    net, c = run(4, {0: SKEW[0]}, symmetric=True)
    assert net.matrices[0] == [list(SKEW[0])] * 4 and c.rows[0].bytes == 4 * 700


def test_calls_without_splits_are_unchanged():
    plain = CollectiveCall(key="0#0", kind="all_to_all", group="0", ranks=(0, 1), nbytes=64, dtype="int64")
    assert with_traffic_matrix(plain, {0: plain, 1: plain}) is plain
    ar = CollectiveCall(key="0#1", kind="all_reduce", group="0", ranks=(0, 1), nbytes=64, dtype="int64")
    assert with_traffic_matrix(ar, {0: ar, 1: ar}) is ar


def test_netsim_times_the_matrix():
    from netsim.config import NetworkConfig
    from netsim.engine import FlowNetwork

    def end_us(matrix_rows):
        c = Coordinator(4, FlowNetwork.build(2, 2, NetworkConfig()))
        for r, row in enumerate(matrix_rows):
            c.handle(Issue(r, 0, a2a(row), host_us=0.0, ready_us=0.0))
        for r in range(4):
            c.handle(Finished(r, 1e9))
        return c.rows[0].end_us

    mb = 1 << 20
    even = end_us([(16 * mb,) * 4] * 4)
    hot = end_us([(40 * mb, 8 * mb, 8 * mb, 8 * mb)] * 4)  # same bytes sent, most of them to rank 0
    assert hot > 1.5 * even
