"""The coordinated sink on a real RankRuntime: NCCL stream placement, lazy resolution, progress."""

from __future__ import annotations

import threading
from multiprocessing import Pipe

import pytest

from common.protocol import (
    Block,
    Channel,
    CollectiveCall,
    Hello,
    Horizon,
    Issue,
    Progress,
    Resolved,
    Unblock,
)
from interpose.config import RankConfig
from interpose.distributed.coordinated import CoordinatedSink
from interpose.distributed.runtime_link import RuntimeTimeline
from interpose.runtime import RankRuntime, set_current
from profiles import build_compute_model, get_gpu


@pytest.fixture
def link():
    gpu = get_gpu("h100")
    rt = RankRuntime(RankConfig(rank=0, world_size=2, gpu=gpu, compute_model=build_compute_model("roofline", gpu),
                                host_time="zero"))
    set_current(rt)
    here, there = Pipe()
    tl = RuntimeTimeline()
    sink = CoordinatedSink(0, Channel(here), tl)
    tl.sink = sink
    coord = Channel(there)
    assert isinstance(coord.recv(), Hello)
    yield rt, sink, coord
    set_current(None)


def call(seq, group="0"):
    return CollectiveCall(key=f"{group}#{seq}", kind="all_reduce", group=group, ranks=(0, 1), nbytes=1 << 20,
                          dtype="float32")


def test_collectives_on_one_group_serialise_and_wait_lazily(link):
    rt, sink, coord = link
    rt.launch("aten.mm.default", "", "", 100.0, 5.0, "roofline")  # compute ends at t=105
    h0 = sink.issue(call(0))
    i0 = coord.recv()
    assert isinstance(i0, Issue) and i0.ready_us == pytest.approx(105.0) and i0.after == ()
    h1 = sink.issue(call(1))
    i1 = coord.recv()
    assert i1.after == (h0,), "same group -> same comm stream -> after the previous collective"
    sink.stream_wait(h1)  # Work.wait(): the current stream now depends on h1
    assert not coord.poll(), "waiting is lazy: nothing is asked yet"
    coord.send(Resolved(h0, 105.0, 150.0))

    def answer():  # the coordinator resolves h1 only when asked
        blk = coord.recv()
        assert isinstance(blk, Block) and blk.handles == (h1,)
        coord.send(Resolved(h1, 150.0, 200.0))
        coord.send(Unblock(True))

    t = threading.Thread(target=answer)
    t.start()
    end = rt.launch("aten.add.Tensor", "", "", 10.0, 5.0, "roofline")  # must start after h1 ends
    t.join(5)
    assert end == pytest.approx(210.0)
    assert rt.clock.host_us == pytest.approx(10.0), "a stream wait does not move the host clock"
    names = [row[1] for row in rt._op_rows]
    assert names.count("nccl:all_reduce") == 2


def test_progress_reported_when_host_clock_passes_horizon(link):
    rt, sink, coord = link
    sink.issue(call(0))
    coord.recv()
    coord.send(Horizon(50.0))
    sink.drain()
    assert not coord.poll()
    for _ in range(20):
        rt.launch("aten.mm.default", "", "", 1.0, 5.0, "roofline")
    msg = coord.recv()
    assert isinstance(msg, Progress) and msg.clock_us >= 50.0
