"""The rank ↔ coordinator wire protocol: small pickled dataclasses over one pipe per rank.

Torch-free (like all of :mod:`common`): the coordinator imports it without pulling torch in; a
rank process unpickles the same classes.

Why a protocol at all: each simulated rank runs the user's script in its own
process with its own clocks; only the coordinator (``phantora.coordinator``)
knows every rank's collectives, so only it can say when a collective ends under
contention. The protocol carries exactly what that needs and nothing more.

Time is simulated microseconds (float), the unit of ``interpose.config.OpRecord``. Collective kinds
are :class:`~common.kinds.CollectiveKind` members on both ends; the coordinator's view of a rank is a
:class:`RankStatus` and a run-ending failure a :class:`FailureKind`.

Rank → coordinator
    :class:`Hello`      first message: who I am.
    :class:`Issue`      a collective (or one side of a send/recv) was enqueued on a stream.
                        Non-blocking: the rank carries on; ``ready_us`` is when the stream
                        reaches it if known, ``after`` names earlier unresolved items of this
                        rank that gate it (stream order), plus ``gap_us`` of work queued in between.
    :class:`Progress`   my host clock reached ``clock_us``: I will issue nothing that starts earlier
                        (the null message of Chandy–Misra–Bryant). Sent when asked via :class:`Horizon`.
    :class:`Block`      I am at a sync point that needs items ``handles`` (``query_us`` set: only ask
                        whether they end by that time, i.e. ``Work.is_completed``). My clock is ``clock_us``.
    :class:`Finished`   my script ended (``error`` holds the traceback if it raised); ``result`` is
                        the rank's picklable result.

Coordinator → rank
    :class:`Resolved`   item ``handle`` of yours runs ``start_us``..``end_us`` (final, never revised);
                        object collectives also get every member's pickled payload (the only data
                        that ever crosses between ranks: ``all_gather_object`` and friends).
    :class:`Horizon`    report :class:`Progress` once your host clock reaches ``report_at_us``.
    :class:`Unblock`    the answer to :class:`Block` (all needed items were resolved before it, or
                        for a query, ``completed`` says whether they end by ``query_us``).
    :class:`Abort`      the run is over (another rank failed, mismatch, deadlock); exit now.

Synchronisation is conservative (lower-bound, CMB-style): the coordinator finalises network
events at time *t* only once every rank that could still issue traffic starting before *t*
has said it will not (its reported clock ≥ *t*, it is blocked, or it finished). Messages
are applied in (time, rank) order, so results do not depend on OS scheduling.
"""

from __future__ import annotations

import select
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection
from typing import Generic, TypeVar

from common.kinds import CollectiveKind

OBJECT_DTYPE = "object"
"""``dtype`` of object send/recv calls: the receiver cannot know the size in advance, so the
coordinator takes the sender's ``nbytes``."""


class _StrEnum(str, Enum):
    """A ``str`` enum whose ``str()``/format is the plain value on every Python (3.10's differ)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class RankStatus(_StrEnum):
    """A rank as the coordinator sees it, from the messages it sent."""

    RUNNING = "running"
    """Its host clock moves; its last :class:`Progress` / :class:`Issue` time is a lower bound."""
    BLOCKED = "blocked"
    """It sent :class:`Block` and waits for :class:`Unblock`."""
    DONE = "done"
    """It sent :class:`Finished` without an error."""
    FAILED = "failed"
    """It sent :class:`Finished` with an error."""

    @property
    def live(self) -> bool:
        """Still able to issue or wait (running or blocked)."""
        return self in (RankStatus.RUNNING, RankStatus.BLOCKED)


class FailureKind(_StrEnum):
    """Why a multi-rank run ended early: ``CoordinatorError.kind`` and the summary's ``failure``."""

    RANK_FAILED = "rank_failed"
    """A rank's script raised, or its process died without :class:`Finished`."""
    MISMATCH = "mismatch"
    """Member ranks issued different collectives under one key."""
    DEADLOCK = "deadlock"
    """Every live rank waits and no pending collective can complete."""
    UNMATCHED = "unmatched"
    """A collective some members never issued before they finished."""
    NOT_SYMMETRIC = "not_symmetric"
    """``--symmetric`` was asked for a program whose ranks are not translated copies."""
    NETWORK = "network"
    """A collective the network backend cannot time."""
    TIMEOUT = "timeout"
    """The run's wall-clock limit passed."""
    LAUNCHER = "launcher"
    """The launching process itself failed (a bug, not the script)."""
    TEARDOWN = "teardown"
    """The ranks finished but did not exit cleanly."""


@dataclass(frozen=True, slots=True)
class CollectiveCall:
    """What a rank asked for, identical on every member rank except ``call_site``, ``nbytes`` of p2p and
    of all-to-all, and ``splits``."""

    key: str
    """Matching key: ``<group name>#<seq>`` for collectives, ``p2p:<src>-<dst>#<seq>`` for send/recv."""
    kind: CollectiveKind
    """What was called; a plain string is parsed (an unknown one raises, listing the valid kinds)."""
    group: str
    """c10d group name (``p2p`` for send/recv pairs)."""
    ranks: tuple[int, ...]
    """Global ranks of the members, in group-rank order."""
    nbytes: int
    """Bytes of the per-rank buffer in NCCL's convention (input of all_reduce, output of all_gather,
    input of reduce_scatter, the message of send/recv)."""
    dtype: str
    """Element type as torch names it without ``torch.`` (``bfloat16``), or :data:`OBJECT_DTYPE`."""
    reduce_op: str = ""
    root: int = -1
    """Global rank of the root (broadcast/reduce/gather/scatter), else -1."""
    call_site: str = ""
    """``file:line`` of the user's frame that issued it."""
    splits: tuple[int, ...] = ()
    """``all_to_all``: bytes this rank sends to each member, in group-rank order (differs per rank,
    like ``nbytes``); empty for other kinds."""
    matrix: tuple[tuple[int, ...], ...] = ()
    """``all_to_all`` as matched by the coordinator: every member's ``splits`` (row ``i``: what member
    ``i`` sends to each member), the traffic matrix the network times; set by the coordinator only."""

    def __post_init__(self) -> None:
        if type(self.kind) is not CollectiveKind:
            object.__setattr__(self, "kind", CollectiveKind.parse(self.kind))


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a rank: who I am."""

    rank: int
    """Global rank."""
    pid: int
    """The rank's process id."""


@dataclass(frozen=True, slots=True)
class Issue:
    """A collective (or one side of a send/recv) was enqueued on a stream; the rank carries on."""

    rank: int
    handle: int
    """Rank-local id of this item, increasing from 0."""
    call: CollectiveCall
    host_us: float
    """Host clock when the call was made (a lower bound on the rank's future traffic)."""
    ready_us: float
    """When the stream reaches the item, ignoring ``after``."""
    after: tuple[int, ...] = ()
    """Handles of this rank's unresolved items that precede it on its stream."""
    gap_us: float = 0.0
    """GPU work queued between the last of ``after`` and this item."""
    stream: int = 0
    payload: bytes | None = None
    """Pickled Python object of an object collective (``all_gather_object`` ...), relayed to the members."""


@dataclass(frozen=True, slots=True)
class Progress:
    """My host clock reached ``clock_us``: I will issue nothing that starts earlier (CMB's null message)."""

    rank: int
    clock_us: float
    """The rank's host clock, simulated µs."""


@dataclass(frozen=True, slots=True)
class Block:
    """I am at a sync point that needs items ``handles``; my clock is ``clock_us``."""

    rank: int
    clock_us: float
    handles: tuple[int, ...]
    query_us: float | None = None
    """Set for ``is_completed``-style queries: answer whether the handles end by this time."""
    what: str = ""
    """Human-readable description of the sync point (for deadlock reports)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """My script ended; ``error`` holds the traceback if it raised."""

    rank: int
    clock_us: float
    error: str | None = None
    result: object = None
    """The rank's picklable result (``interpose.RankResult`` under the shim), relayed to the launcher
    unread except for an ``exit_code`` attribute or key."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Item ``handle`` runs ``start_us``..``end_us`` (final, never revised)."""

    handle: int
    start_us: float
    end_us: float
    transport: str = ""
    payloads: tuple[bytes | None, ...] | None = None
    """For object collectives: every member's payload, in group-rank order."""


@dataclass(frozen=True, slots=True)
class Horizon:
    """Report :class:`Progress` once your host clock reaches ``report_at_us``."""

    report_at_us: float


@dataclass(frozen=True, slots=True)
class Unblock:
    """The answer to :class:`Block`: all needed items are resolved, or for a query, whether they end by then."""

    completed: bool = True


@dataclass(frozen=True, slots=True)
class Abort:
    """The run is over (another rank failed, mismatch, deadlock): exit now."""

    reason: str


RankMessage = Hello | Issue | Progress | Block | Finished
CoordinatorMessage = Resolved | Horizon | Unblock | Abort


def message_time_us(msg: RankMessage) -> float:
    """The rank's clock a message reports (0 for :class:`Hello`): the coordinator merges ranks by it."""
    if isinstance(msg, Issue):
        return msg.host_us
    if isinstance(msg, Hello):
        return 0.0
    return msg.clock_us


S = TypeVar("S", RankMessage, CoordinatorMessage)
R = TypeVar("R", RankMessage, CoordinatorMessage)


@dataclass
class Channel(Generic[S, R]):
    """One end of a rank's pipe; pickles protocol messages (a few hundred bytes each). ``S`` is what
    this end sends, ``R`` what it receives (:data:`RankChannel`, :data:`CoordinatorChannel`)."""

    conn: Connection

    def send(self, msg: S) -> None:
        self.conn.send(msg)

    def recv(self) -> R:
        return self.conn.recv()

    def poll(self, timeout_s: float = 0.0) -> bool:
        # not Connection.poll: it loops on time.monotonic(), which the shim replaces with simulated time
        return bool(select.select([self.conn.fileno()], [], [], timeout_s)[0])


RankChannel = Channel[RankMessage, CoordinatorMessage]
"""A rank's end: sends :data:`RankMessage`, receives :data:`CoordinatorMessage`."""
CoordinatorChannel = Channel[CoordinatorMessage, RankMessage]
"""The coordinator's end of one rank's pipe."""

__all__ = [
    "OBJECT_DTYPE", "Abort", "Block", "Channel", "CollectiveCall", "CollectiveKind", "CoordinatorChannel",
    "CoordinatorMessage", "FailureKind", "Finished", "Hello", "Horizon", "Issue", "Progress", "RankChannel",
    "RankMessage", "RankStatus", "Resolved", "Unblock", "message_time_us",
]
