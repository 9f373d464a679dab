"""The coordinator's state machine, driven by hand-written message scripts (no processes)."""

from __future__ import annotations

import itertools

import pytest

from common.protocol import (
    Abort,
    Block,
    CollectiveCall,
    Finished,
    Horizon,
    Issue,
    Progress,
    Resolved,
    Unblock,
)
from netsim.alpha_beta import AlphaBetaNetwork
from phantora.coordinator import Coordinator, CoordinatorError


def call(key="0#0", kind="all_reduce", ranks=(0, 1), nbytes=1_000_000, site="train.py:10", **kw):
    return CollectiveCall(key=key, kind=kind, group=key.split("#")[0], ranks=ranks, nbytes=nbytes,
                          dtype="float32", call_site=site, **kw)


def coord(n=2, gpus_per_host=8):
    return Coordinator(n, AlphaBetaNetwork(gpus_per_host=gpus_per_host, nvlink_gbps=100.0, latency_us=0.0))


def replies(c, rank, kind):
    return [m for r, m in c.outbox if r == rank and isinstance(m, kind)]


def test_collective_resolves_when_all_members_issued_and_clocks_pass():
    c = coord()
    c.handle(Issue(0, 0, call(), host_us=5.0, ready_us=10.0))
    assert not replies(c, 0, Resolved)
    c.handle(Issue(1, 0, call(), host_us=20.0, ready_us=30.0))
    # 2 ranks, 1 MB, factor 1.0, 100 GB/s -> 10 us; start = max ready = 30
    assert not replies(c, 0, Resolved), "must wait until both ranks' clocks pass the end"
    assert replies(c, 0, Horizon)[-1].report_at_us == pytest.approx(40.0)
    c.handle(Block(0, 12.0, (0,)))
    c.handle(Progress(1, 45.0))
    r0 = replies(c, 0, Resolved)
    assert r0 and r0[0].start_us == pytest.approx(30.0) and r0[0].end_us == pytest.approx(40.0)
    assert replies(c, 0, Unblock) == [Unblock(True)]
    assert c.ranks[0].clock_us == pytest.approx(40.0)
    assert c.rows[0].busbw_gbps == pytest.approx(100.0)


def test_stream_dependency_gates_start():
    c = coord()
    for r in (0, 1):
        c.handle(Issue(r, 0, call("0#0"), host_us=0.0, ready_us=0.0))
        c.handle(Issue(r, 1, call("0#1"), host_us=1.0, ready_us=1.0, after=(0,), gap_us=5.0))
    for r in (0, 1):
        c.handle(Finished(r, 2.0))
    ends = {row.key: (row.start_us, row.end_us) for row in c.rows}
    assert ends["0#0"] == pytest.approx((0.0, 10.0))
    assert ends["0#1"] == pytest.approx((15.0, 25.0))


def test_mismatch_names_ranks_and_call_sites():
    c = coord()
    c.handle(Issue(0, 0, call(site="a.py:1"), 0.0, 0.0))
    with pytest.raises(CoordinatorError) as e:
        c.handle(Issue(1, 0, call(kind="all_gather", site="a.py:2"), 0.0, 0.0))
    assert e.value.kind == "mismatch"
    msg = str(e.value)
    assert "rank 0" in msg and "rank 1" in msg and "a.py:1" in msg and "a.py:2" in msg


def test_size_mismatch_detected():
    c = coord()
    c.handle(Issue(0, 0, call(nbytes=10), 0.0, 0.0))
    with pytest.raises(CoordinatorError, match="bytes: 10 vs 20"):
        c.handle(Issue(1, 0, call(nbytes=20), 0.0, 0.0))


def test_deadlock_reports_each_rank_state():
    c = coord(3)
    c.handle(Issue(0, 0, call(ranks=(0, 1, 2), site="t.py:7"), 0.0, 0.0))
    c.handle(Block(0, 1.0, (0,), what="work.wait()"))
    c.handle(Issue(1, 0, call(ranks=(0, 1, 2)), 0.0, 0.0))
    c.handle(Block(1, 1.0, (0,)))
    with pytest.raises(CoordinatorError) as e:
        c.handle(Finished(2, 3.0))
    assert e.value.kind == "deadlock"
    msg = str(e.value)
    assert "rank 0: blocked" in msg and "not issued by rank(s) [2]" in msg and "rank 2: done" in msg
    assert "t.py:7" in msg


def test_failed_rank_aborts():
    c = coord()
    with pytest.raises(CoordinatorError) as e:
        c.handle(Finished(1, 0.0, error="Traceback ...\nValueError: boom"))
    assert e.value.kind == "rank_failed" and "boom" in str(e.value)
    c.abort_all("rank 1 failed")
    assert replies(c, 0, Abort)


def test_unmatched_collective_after_all_finish():
    c = coord()
    c.handle(Issue(0, 0, call(), 0.0, 0.0))
    c.handle(Finished(0, 1.0))
    with pytest.raises(CoordinatorError) as e:
        c.handle(Finished(1, 1.0))
    assert e.value.kind == "unmatched"


def test_query_answers_false_before_end_and_true_after():
    c = coord()
    for r in (0, 1):
        c.handle(Issue(r, 0, call(), 0.0, 0.0))
    c.handle(Block(0, 5.0, (0,), query_us=5.0))
    assert not replies(c, 0, Unblock)  # rank 1 could still send traffic before t=5
    c.handle(Progress(1, 6.0))
    assert replies(c, 0, Unblock) == [Unblock(False)]
    c.handle(Block(0, 12.0, (0,), query_us=12.0))
    c.handle(Progress(1, 13.0))
    assert replies(c, 0, Unblock)[-1] == Unblock(True)


def _script():
    """Per-rank message lists of a small 3-rank job with two groups."""
    g = (0, 1, 2)
    msgs = {r: [] for r in g}
    for r in g:
        msgs[r].append(Issue(r, 0, call("0#0", ranks=g), host_us=r * 3.0, ready_us=r * 4.0))
        if r < 2:
            msgs[r].append(Issue(r, 1, call("1#0", ranks=(0, 1), nbytes=4_000_000), host_us=10.0 + r,
                                 ready_us=11.0 + r, after=(0,), gap_us=2.0))
            msgs[r].append(Block(r, 12.0, (1,)))
        msgs[r].append(Finished(r, 100.0))
    return msgs


def _run(order):
    """Deliver per-rank messages in the interleaving ``order``; a rank's next message waits for an Unblock."""
    c = coord(3)
    msgs = {r: list(m) for r, m in _script().items()}
    blocked = set()
    seen = 0
    for r in itertools.cycle(order):
        if not any(msgs.values()):
            break
        new = c.outbox[seen:]
        seen = len(c.outbox)
        for rr, m in new:
            if isinstance(m, Unblock):
                blocked.discard(rr)
        if r in blocked or not msgs[r]:
            continue
        m = msgs[r].pop(0)
        if isinstance(m, Block):
            blocked.add(r)
        c.handle(m)
    return [(row.key, row.start_us, row.end_us) for row in c.rows]


def test_result_independent_of_message_order():
    results = {tuple(_run(order)) for order in itertools.permutations((0, 1, 2))}
    assert len(results) == 1
    (rows,) = results
    assert [k for k, _, _ in rows] == ["0#0", "1#0"]


def test_object_payloads_are_relayed_in_group_rank_order():
    c = coord()
    obj = call(kind="all_gather_object", nbytes=5)
    c.handle(Issue(1, 0, obj, 0.0, 0.0, payload=b"one"))
    c.handle(Issue(0, 0, CollectiveCall(**{**{f: getattr(obj, f) for f in obj.__slots__}, "nbytes": 9}),
                   0.0, 0.0, payload=b"zero"))  # different sizes are fine for objects
    for r in (0, 1):
        c.handle(Finished(r, 1.0))
    res = replies(c, 0, Resolved)
    assert res and res[0].payloads == (b"zero", b"one")


def test_object_send_recv_relays_the_senders_pickle():
    """``recv_object_list`` cannot know the size: the receiver may issue first with 0 bytes."""
    c = coord()
    recv = call("p2p:0:0-1#0", kind="recv", ranks=(0, 1), nbytes=0, root=0)
    send = call("p2p:0:0-1#0", kind="send", ranks=(0, 1), nbytes=7, root=0)
    recv, send = (CollectiveCall(**{**{f: getattr(x, f) for f in x.__slots__}, "dtype": "object"}) for x in (recv, send))
    c.handle(Issue(1, 0, recv, 0.0, 0.0))
    c.handle(Issue(0, 0, send, 0.0, 0.0, payload=b"pickled"))
    for r in (0, 1):
        c.handle(Finished(r, 1.0))
    (res,) = replies(c, 1, Resolved)
    assert res.payloads == (b"pickled", None)
    assert c.rows[0].bytes == 7, "timed with the sender's size"
