"""How long the simulated NCCL process group keeps a collective's tensors alive
(:mod:`interpose.distributed.stash`, ProcessGroupNCCL's tensor stash and watchdog)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from interpose.distributed import LocalSink, install, uninstall
from interpose.distributed.stash import TensorShelf, Watchdog


class Clock:
    """Host clock and collective ends set by the test (µs)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ends: dict[int, float] = {}

    def host_us(self) -> float:
        return self.now

    def ended_by(self, handle: int, t_us: float) -> bool:
        return self.ends[handle] <= t_us


def test_shelf_released_by_first_issue_after_the_poll_that_sees_the_end():
    clock = Clock()
    wd = Watchdog(clock, created_us=0.0, poll_us=100.0)
    shelf = TensorShelf([torch.ones(4)])
    clock.ends[0] = 30.0
    wd.enqueue(0, shelf)
    for now, handle in ((50.0, 1), (99.0, 2)):  # ended at 30, but no poll since: still held
        clock.now, clock.ends[handle] = now, now
        wd.enqueue(handle, None)
        assert not shelf.empty()
    clock.now = 250.0  # polls at 100 and 200 saw it; nothing issued yet: still held
    assert not shelf.empty()
    clock.ends[3] = 250.0
    wd.enqueue(3, None)
    assert shelf.empty() and wd.pending() == 0


def test_shelf_of_a_collective_still_running_at_the_poll_stays():
    clock = Clock()
    wd = Watchdog(clock, created_us=7.0, poll_us=100.0)  # polls at 107, 207, ...
    slow, fast = TensorShelf([torch.ones(1)]), TensorShelf([torch.ones(1)])
    clock.ends |= {0: 150.0, 1: 160.0}
    wd.enqueue(0, slow)
    wd.enqueue(1, fast)
    clock.now, clock.ends[2] = 180.0, 180.0  # last poll 107: neither had ended
    wd.enqueue(2, None)
    assert not slow.empty() and not fast.empty()
    clock.now, clock.ends[3] = 207.0, 207.0  # the poll at 207 saw both
    wd.enqueue(3, None)
    assert slow.empty() and fast.empty()


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    install(LocalSink())  # no runtime: the clock stands at 0, every collective ends at 0
    dist.init_process_group("nccl")
    yield dist.group.WORLD
    dist.destroy_process_group()
    uninstall()


def _alive(ref: weakref.ref) -> bool:
    gc.collect()
    return ref() is not None


def test_async_input_outlives_its_work_until_the_groups_next_collective(world):
    t = torch.ones(1024)
    ref = weakref.ref(t)
    work = dist.all_reduce(t, async_op=True)
    work.get_future().wait()  # a future's wait (DDP's reducer) does not unstash
    del t, work
    assert _alive(ref), "stashed on the work's shelf, handed to the watchdog"
    dist.all_reduce(torch.ones(1))  # workEnqueue: the watchdog's shelves are unstashed
    assert not _alive(ref)


def test_wait_and_sync_calls_release_at_once(world):
    a, b = torch.ones(8), torch.ones(8)
    ra, rb = weakref.ref(a), weakref.ref(b)
    dist.all_reduce(a, async_op=True).wait()
    dist.all_reduce(b)  # async_op=False: on the caller's stream, nothing stashed
    del a, b
    assert not _alive(ra) and not _alive(rb)


def test_functional_collective_released_by_wait_tensor(world):
    x = torch.ones(16)
    rx = weakref.ref(x)
    y = funcol.wait_tensor(funcol.all_gather_tensor(x, 0, world))
    del x
    assert not _alive(rx) and y.numel() == 32
