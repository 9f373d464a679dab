"""The coordinator's state machine: match collectives across ranks, drive the network model,
answer sync points, and detect mismatches and deadlocks. No I/O here (see ``server.py``).

Conservative synchronisation (Chandy–Misra–Bryant with zero lookahead): a rank's lower
bound is its last reported host clock while it runs, the time it asked about while it
waits on an ``is_completed`` query, and +∞ while it waits for a collective (it can only
resume at a completion the coordinator itself produces). Network events at time *t* are
popped only when *t* ≤ the minimum lower bound, so no traffic that starts before *t* can
still arrive, and every answer is final. Each popped batch is handled in (time, key) order
and replies only depend on that state, so results do not depend on message arrival order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from common.kinds import CollectiveKind, UnknownCollectiveKind
from common.protocol import (
    OBJECT_DTYPE,
    Abort,
    Block,
    CollectiveCall,
    CoordinatorMessage,
    FailureKind,
    Finished,
    Hello,
    Horizon,
    Issue,
    Progress,
    RankMessage,
    RankStatus,
    Resolved,
    Unblock,
)
from netsim.backend import NetworkBackend
from netsim.collectives import bus_factor
from phantora.coordinator.calls import CollectiveRow, with_traffic_matrix
from phantora.coordinator.symmetric import NotSymmetricError, sibling_offsets

INF = math.inf


class CoordinatorError(Exception):
    """The run cannot go on; ``kind`` says why (:class:`~common.protocol.FailureKind`: ``rank_failed``,
    ``mismatch``, ``deadlock``, ``unmatched``, ``not_symmetric``, ``network``, ``timeout``...).

    ``exit_code`` is what ``phantora run`` exits with: the failing rank's own exit code
    (``sys.exit(7)`` on a rank gives 7), else 1. ``rank`` is the failing rank, if one is to blame.
    """

    def __init__(self, kind: FailureKind | str, message: str, *, exit_code: int = 1, rank: int | None = None) -> None:
        super().__init__(message)
        self.kind = FailureKind(kind)  # every kind is a FailureKind member (the summary's `failure` values)
        self.exit_code = exit_code if isinstance(exit_code, int) and exit_code != 0 else 1
        self.rank = rank


def result_exit_code(result: object) -> int | None:
    """The exit code a rank's result carries (``RankResult.exit_code`` or a plain dict's), if any."""
    code = result.get("exit_code") if isinstance(result, dict) else getattr(result, "exit_code", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


@dataclass
class RankState:
    rank: int
    status: RankStatus = RankStatus.RUNNING
    clock_us: float = 0.0
    block: Block | None = None
    asked_us: float | None = None
    result: object = None


@dataclass
class Item:
    """One rank's side of a collective."""

    issue: Issue
    start_us: float | None = None
    end_us: float | None = None


@dataclass
class Match:
    call: CollectiveCall
    items: dict[int, Item] = field(default_factory=dict)
    start_us: float | None = None
    end_us: float | None = None
    transport: str = ""


_COMPARED = ("kind", "ranks", "dtype", "reduce_op", "root")


class Coordinator:
    """Feed it rank messages with :meth:`handle`; collect replies from :attr:`outbox`."""

    def __init__(self, world_size: int, network: NetworkBackend, *, symmetric: bool = False) -> None:
        """``network``: any :class:`netsim.backend.NetworkBackend` (``netsim.backend.build_network``);
        ``symmetric``: only rank 0 runs; every collective is also put on the network for each
        sibling group (see :mod:`phantora.coordinator.symmetric`)."""
        self.world_size = world_size
        self.net = network
        self._keys: dict[int, str] = {}
        """Network handle -> match key of the collectives in flight."""
        self.symmetric = symmetric
        self.ranks = {r: RankState(r) for r in ((0,) if symmetric else range(world_size))}
        self.items: dict[tuple[int, int], Item] = {}
        self.matches: dict[str, Match] = {}
        self.waiting_on: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.outbox: list[tuple[int, CoordinatorMessage]] = []
        self.rows: list[CollectiveRow] = []
        self.net_time_us = 0.0

    # --- input ---------------------------------------------------------------
    def handle(self, msg: RankMessage) -> None:
        """Apply one message, then advance as far as is safe."""
        if isinstance(msg, Issue):
            self._on_issue(msg)
        elif isinstance(msg, Progress):
            st = self.ranks[msg.rank]
            st.clock_us = max(st.clock_us, msg.clock_us)
        elif isinstance(msg, Block):
            st = self.ranks[msg.rank]
            st.clock_us = max(st.clock_us, msg.clock_us)
            st.status, st.block = RankStatus.BLOCKED, msg
        elif isinstance(msg, Finished):
            st = self.ranks[msg.rank]
            st.clock_us = max(st.clock_us, msg.clock_us)
            st.result = msg.result
            if msg.error is not None:
                st.status = RankStatus.FAILED
                raise CoordinatorError(FailureKind.RANK_FAILED, f"rank {msg.rank} failed:\n{msg.error}",
                                       exit_code=result_exit_code(msg.result) or 1, rank=msg.rank)
            st.status = RankStatus.DONE
        elif isinstance(msg, Hello):
            return
        else:
            raise TypeError(f"unexpected message {msg!r}")
        self.advance()

    def _on_issue(self, msg: Issue) -> None:
        st = self.ranks[msg.rank]
        st.clock_us = max(st.clock_us, msg.host_us)
        call = msg.call
        if msg.rank not in call.ranks:
            raise CoordinatorError(FailureKind.MISMATCH, f"rank {msg.rank} issued {call.kind} on a group without it "
                                   f"(ranks {list(call.ranks)}) at {call.call_site}")
        if self.symmetric:
            self._check_symmetric(call)
        item = Item(msg)
        self.items[(msg.rank, msg.handle)] = item
        m = self.matches.get(call.key)
        if m is None:
            m = self.matches[call.key] = Match(call)
        else:
            self._check_same(m, msg)
        if msg.rank in m.items:
            raise CoordinatorError(FailureKind.MISMATCH, f"rank {msg.rank} issued {call.key} twice")
        if call.kind is CollectiveKind.SEND and call.dtype == OBJECT_DTYPE:
            m.call = call  # an object's size is known to its sender only
        m.items[msg.rank] = item
        self._try_ready((msg.rank, msg.handle))

    def _check_symmetric(self, call: CollectiveCall) -> None:
        if call.kind.is_p2p:
            raise CoordinatorError(FailureKind.NOT_SYMMETRIC, f"--symmetric: {call.kind} at {call.call_site} is "
                                   "point-to-point, so ranks are not symmetric; run without --symmetric")
        try:
            sibling_offsets(call.ranks, self.world_size)
        except NotSymmetricError as e:
            raise CoordinatorError(FailureKind.NOT_SYMMETRIC, f"--symmetric: {call.kind} at {call.call_site}: {e}; "
                                   "run without --symmetric") from None

    def members(self, call: CollectiveCall) -> list[int]:
        """The group's ranks that run here (all of them, or rank 0 alone in a symmetric run)."""
        return [r for r in call.ranks if r in self.ranks]

    def _submit(self, call: CollectiveCall, start_us: float) -> None:
        self._net_submit(call, start_us)
        if not self.symmetric:
            return
        for o in sibling_offsets(call.ranks, self.world_size):
            root = call.root + o if call.root >= 0 else -1
            self._net_submit(replace(call, key=f"{call.key}@+{o}", ranks=tuple(r + o for r in call.ranks),
                                     root=root), start_us)

    # --- the network: a netsim NetworkBackend, in integer ns (the protocol speaks float us) ---------
    def _net_submit(self, call: CollectiveCall, start_us: float) -> None:
        """Put a matched collective on the network; a kind it cannot time is an error, never a guess."""
        try:
            kind = CollectiveKind.parse(call.kind).network_kind.value
        except UnknownCollectiveKind:
            kind = ""
        if not kind or not self.net.supports(kind):
            raise CoordinatorError(FailureKind.NETWORK, f"{call.kind} at {call.call_site}: the network backend "
                                   f"({type(self.net).__name__}) cannot time this collective kind")
        start_ns = max(round(start_us * 1e3), self.net.now_ns)
        nbytes = max(call.nbytes, 4) if call.kind == CollectiveKind.BARRIER else call.nbytes
        matrix = [list(row) for row in call.matrix] if call.matrix else None  # an uneven all-to-all
        ranks = list(call.ranks)
        if call.root in ranks:  # rooted collectives start at ranks[0] in every decomposition
            i = ranks.index(call.root)
            ranks = ranks[i:] + ranks[:i]
        h = self.net.submit_collective(kind, ranks, nbytes, start_ns, tag=call.key, matrix=matrix)
        self._keys[h] = call.key

    def _next_event_us(self) -> float | None:
        t = self.net.next_event_ns()
        return None if t is None else t / 1e3

    def _pop_until(self, t_us: float) -> list[tuple[float, str]]:
        """``(end_us, key)`` of the collectives ending by ``t_us``, in (time, key) order."""
        out = []
        for h in self.net.run_until(round(t_us * 1e3)):
            key = self._keys.pop(h, None)
            if key is not None:
                out.append((max(self.net.result(h).values()) / 1e3, key))
        return sorted(out)

    def _check_same(self, m: Match, msg: Issue) -> None:
        a, b = m.call, msg.call
        first_rank = next(iter(m.items))
        diffs = [f"{f}: {getattr(a, f)!r} vs {getattr(b, f)!r}" for f in _COMPARED if getattr(a, f) != getattr(b, f)]
        p2p = {a.kind, b.kind} == {CollectiveKind.SEND, CollectiveKind.RECV}
        if p2p:
            diffs = [d for d in diffs if not d.startswith("kind")]
        if a.nbytes != b.nbytes and a.kind is not CollectiveKind.ALL_TO_ALL and not a.kind.is_object and a.dtype != OBJECT_DTYPE:
            diffs.append(f"bytes: {a.nbytes} vs {b.nbytes}")
        if diffs:
            raise CoordinatorError(
                FailureKind.MISMATCH,
                f"mismatched collective {a.key} (group {a.group}, call #{a.key.rsplit('#', 1)[-1]}): "
                f"rank {first_rank} issued {a.kind} at {a.call_site}, rank {msg.rank} issued {b.kind} "
                f"at {b.call_site}; " + "; ".join(diffs),
            )

    # --- readiness -----------------------------------------------------------
    def _try_ready(self, ref: tuple[int, int]) -> None:
        item = self.items[ref]
        if item.start_us is not None:
            return
        iss = item.issue
        ends = []
        for h in iss.after:
            dep = self.items.get((iss.rank, h))
            if dep is None or dep.end_us is None:
                self.waiting_on.setdefault((iss.rank, h), []).append(ref)
                return
            ends.append(dep.end_us)
        item.start_us = max([iss.ready_us, *(e + iss.gap_us for e in ends)])
        m = self.matches[iss.call.key]
        if m.start_us is None and len(m.items) == len(self.members(m.call)) and all(i.start_us is not None for i in m.items.values()):
            # a rank resumed from a stream wait may still issue at its older host time; the
            # network never goes back, so such traffic starts at the network's present
            start = max(self.net_time_us, *(i.start_us for i in m.items.values() if i.start_us is not None))
            m.start_us = start
            m.call = with_traffic_matrix(m.call, {r: i.issue.call for r, i in m.items.items()})
            self._submit(m.call, start)

    # --- time ------------------------------------------------------------------
    def horizon_us(self) -> float:
        h = INF
        for st in self.ranks.values():
            if st.status is RankStatus.RUNNING:
                h = min(h, st.clock_us)
            elif st.status is RankStatus.BLOCKED and st.block is not None and st.block.query_us is not None:
                h = min(h, st.block.query_us)
        return h

    def advance(self) -> None:
        """Pop every network event that is provably final, answer sync points, ask for progress."""
        while True:
            self._answer_blocks()
            h = self.horizon_us()
            t = self._next_event_us()
            if t is None or t > h:
                break
            self.net_time_us = t
            for end_us, key in self._pop_until(t):
                self._complete(key, end_us, self.net.transport_name)
        t = self._next_event_us()
        for st in self.ranks.values():
            if st.status is RankStatus.RUNNING and t is not None and st.clock_us < t and st.asked_us != t:
                st.asked_us = t
                self.outbox.append((st.rank, Horizon(t)))
        self._check_deadlock()

    def _complete(self, key: str, end_us: float, transport: str) -> None:
        m = self.matches.get(key)
        if m is None:  # a sibling group's copy in a symmetric run: it only loads the network
            return
        m.end_us, m.transport = end_us, transport
        payloads = None
        if any(i.issue.payload is not None for i in m.items.values()):
            # a symmetric run's absent ranks are assumed to send what the running rank sent
            first = m.items[min(m.items)]
            payloads = tuple(m.items.get(r, first).issue.payload for r in m.call.ranks)
        for r in sorted(m.items):
            item = m.items[r]
            item.end_us = end_us
            self.outbox.append((r, Resolved(item.issue.handle, m.start_us or 0.0, end_us, transport, payloads)))
        c = m.call
        dur = end_us - (m.start_us or 0.0)
        busbw = c.nbytes * bus_factor(c.kind, len(c.ranks)) / (dur * 1e3) if dur > 0 else 0.0
        site = m.items[min(m.items)].issue.call.call_site
        kind = CollectiveKind.SEND_RECV.value if CollectiveKind.parse(c.kind).is_p2p else str(c.kind)
        self.rows.append(CollectiveRow(c.key, kind, c.group, len(c.ranks), c.nbytes, c.dtype,
                                       m.start_us or 0.0, end_us, busbw, transport, site, c.matrix))
        for r in sorted(m.items):
            for dep in self.waiting_on.pop((r, m.items[r].issue.handle), []):
                self._try_ready(dep)

    def _answer_blocks(self) -> None:
        h = self.horizon_us()
        t = self._next_event_us()
        for st in self.ranks.values():
            if st.status is not RankStatus.BLOCKED or st.block is None:
                continue
            b = st.block
            items = [self.items.get((st.rank, hd)) for hd in b.handles]
            done = all(i is not None and i.end_us is not None for i in items)
            if b.query_us is None:
                if done:
                    ends = [i.end_us for i in items if i is not None and i.end_us is not None]
                    self._resume(st, max([st.clock_us, *ends]), Unblock(True))
            else:
                q = b.query_us
                if done and all(i.end_us <= q for i in items if i is not None and i.end_us is not None):
                    self._resume(st, q, Unblock(True))
                elif h >= q and (t is None or t > q):
                    self._resume(st, q, Unblock(False))

    def _resume(self, st: RankState, clock_us: float, reply: Unblock) -> None:
        st.status, st.block, st.asked_us = RankStatus.RUNNING, None, None
        st.clock_us = max(st.clock_us, clock_us)
        self.outbox.append((st.rank, reply))

    # --- failures ----------------------------------------------------------------
    def _check_deadlock(self) -> None:
        live = [st for st in self.ranks.values() if st.status.live]
        if not live:
            self._check_unmatched()
            return
        if any(st.status is RankStatus.RUNNING for st in live) or self._next_event_us() is not None:
            return
        lines = ["deadlock: every live rank is waiting and no pending collective can complete"]
        for st in self.ranks.values():
            lines.append("  " + self.describe(st.rank))
        raise CoordinatorError(FailureKind.DEADLOCK, "\n".join(lines))

    def describe(self, rank: int) -> str:
        """One line: what ``rank`` is doing (for deadlock and abort reports)."""
        st = self.ranks[rank]
        if st.status is not RankStatus.BLOCKED or st.block is None:
            return f"rank {rank}: {st.status} at t={st.clock_us:.1f} us"
        parts = []
        for hd in st.block.handles:
            item = self.items.get((rank, hd))
            if item is None:
                parts.append(f"unknown item {hd}")
                continue
            c = item.issue.call
            m = self.matches[c.key]
            missing = [r for r in self.members(c) if r not in m.items]
            miss = f"; not issued by rank(s) {missing}" if missing else ""
            parts.append(f"{c.kind} on group {c.group} seq {c.key.rsplit('#', 1)[-1]} "
                         f"({c.nbytes} B) issued at {c.call_site}{miss}")
        what = f" [{st.block.what}]" if st.block.what else ""
        return f"rank {rank}: blocked at t={st.clock_us:.1f} us{what} waiting for " + ", ".join(parts)

    def _check_unmatched(self) -> None:
        open_ = [m for m in self.matches.values() if len(m.items) < len(self.members(m.call))]
        if open_:
            m = open_[0]
            missing = [r for r in self.members(m.call) if r not in m.items]
            raise CoordinatorError(
                FailureKind.UNMATCHED,
                f"{len(open_)} collective(s) never matched; first: {m.call.kind} {m.call.key} issued by "
                f"rank(s) {sorted(m.items)} at {m.call.call_site}, never by rank(s) {missing} (they finished)",
            )

    def abort_all(self, reason: str) -> None:
        for st in self.ranks.values():
            if st.status.live:
                self.outbox.append((st.rank, Abort(reason)))

    def finished(self) -> bool:
        return all(st.status is RankStatus.DONE for st in self.ranks.values())
