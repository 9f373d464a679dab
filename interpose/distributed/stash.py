"""How long ProcessGroupNCCL keeps a collective's tensors alive: the tensor stash and the watchdog.

A simulated rank frees a fake cuda tensor the moment its last Python/C++ reference dies, so
whoever holds references decides the memory curve. ProcessGroupNCCL holds one more than the
caller sees (torch 2.8 to 2.13; checked in ``torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp``
and the 2.13 ``ProcessGroupNCCL.hpp`` installed here):

* ``ProcessGroupNCCL::collective`` / ``collectiveCoalesced``: when ``opts.asyncOp`` is true (the
  default of every options struct, so also DDP's reducer and ``_c10d_functional``), the inputs
  and outputs are stashed on the work's ``TensorShelf`` (``stashed_for_allocator_safety_``, shared
  with the copy of the work that ``workEnqueue`` puts on ``workMetaList_``). A synchronous call
  (``async_op=False``) runs on the caller's stream and stashes nothing.
* ``WorkNCCL::wait`` -> ``synchronize`` -> ``synchronizeStream``: unstashes at once. Waiting on
  the work's *future* (``getFuture()->wait()``, what DDP's reducer does after its comm hook)
  does not.
* ``Watchdog::runLoop``: polls ``workMetaList_`` every ``kWatchdogThreadSleepMillis`` (100 ms,
  a ``wait_for`` woken only by termination); a work whose end event has completed has its shelf
  moved to ``shelvesToUnstash_``.
* ``ProcessGroupNCCL::workEnqueue``: the next collective issued on the same group (after its
  kernel is enqueued) unstashes every shelf in ``shelvesToUnstash_``, on the issuing thread.

So the tensors of an async collective that nobody ``wait()``\\ s stay allocated until the first
collective issued on that group after the first watchdog poll at or after the collective's GPU
end. DDP shows it: the first iteration's single gradient bucket is dropped by the reducer when it
rebuilds its buckets at iteration 2, just after that rebuild broadcasts the new bucket indices. If
no poll came between the bucket's all-reduce and those broadcasts, the bucket stays allocated into
iteration 2's peak (an H200 trace: freed by the first all-reduce of iteration 2's backward, on the
autograd thread); if one did, it is freed at the rebuild. Real runs show both outcomes.

Modelled here on simulated time: the watchdog polls on the grid ``created + k * POLL_US`` of the
group's host clock; at each issue, pending shelves (oldest first: a group's collectives end in
order on its one communication stream) whose collective ended by the last poll are unstashed.
Point-to-point ops use ``recordStream`` instead of the stash (``pointToPoint``), not modelled;
``TORCH_NCCL_BLOCKING_WAIT`` (no watchdog list) is not modelled either.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import torch

POLL_US = 100_000.0
"""``ProcessGroupNCCL::kWatchdogThreadSleepMillis`` (100 ms), in simulated µs."""


class EndClock(Protocol):
    """What the watchdog asks the sink: the host clock, and whether a collective ended by a time."""

    def host_us(self) -> float: ...

    def ended_by(self, handle: int, t_us: float) -> bool: ...


class TensorShelf:
    """References that keep a collective's tensors allocated (``TensorShelf`` in ProcessGroupNCCL)."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.tensors = tensors

    def unstash(self) -> None:
        self.tensors = []

    def empty(self) -> bool:
        return not self.tensors


def shelf_of(*groups: list[torch.Tensor]) -> TensorShelf:
    """One shelf for the inputs and outputs of a call (an in-place tensor counted once)."""
    seen: dict[int, torch.Tensor] = {}
    for ts in groups:
        for t in ts:
            seen.setdefault(id(t), t)
    return TensorShelf(list(seen.values()))


class Watchdog:
    """One group's watchdog, as far as tensor lifetimes go (see the module docstring)."""

    def __init__(self, clock: EndClock, created_us: float, poll_us: float = POLL_US) -> None:
        self._clock = clock
        self._origin_us = created_us
        self._poll_us = poll_us
        self._pending: deque[tuple[int, TensorShelf]] = deque()
        self._checked_us = -math.inf
        """The last poll the pending shelves were checked against: a later issue in the same poll
        interval finds nothing new (a collective issued after a poll cannot have ended by it)."""

    def last_poll_us(self, now_us: float) -> float:
        """The watchdog's latest poll at or before ``now_us``."""
        return self._origin_us + math.floor((now_us - self._origin_us) / self._poll_us) * self._poll_us

    def enqueue(self, handle: int, shelf: TensorShelf | None) -> None:
        """``workEnqueue`` of collective ``handle`` (already issued): first unstash what the
        watchdog has reaped, then hand this work's shelf to the watchdog."""
        self.reap()
        if shelf is not None and not shelf.empty():
            self._pending.append((handle, shelf))

    def reap(self) -> None:
        if not self._pending:
            return
        poll = self.last_poll_us(self._clock.host_us())
        if poll <= self._checked_us:
            return
        self._checked_us = poll
        while self._pending:
            handle, shelf = self._pending[0]
            if not shelf.empty() and not self._clock.ended_by(handle, poll):
                break
            self._pending.popleft()
            shelf.unstash()

    def pending(self) -> int:
        """Shelves still held (for tests and diagnostics)."""
        return sum(not s.empty() for _, s in self._pending)
