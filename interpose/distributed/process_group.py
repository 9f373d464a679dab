"""The simulated ``nccl`` process group: a Python ``ProcessGroup`` whose collectives move no data
and take simulated time (:mod:`interpose.distributed.c10d_patches` routes c10d to it).

Every c10d entry point (``dist.all_reduce``, ``_c10d_functional`` ops used by DTensor and
FSDP2, DDP's reducer) ends in one of the methods below. Each builds a
:class:`~common.protocol.CollectiveCall` (kind, bytes, group, sequence number, call
site), hands it to the :class:`~interpose.distributed.sink.CollectiveSink` and returns a
:class:`SimWork` whose ``wait`` is a stream dependency, as with NCCL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d
from torch.futures import Future

from common.kinds import CollectiveKind
from common.protocol import OBJECT_DTYPE, CollectiveCall
from interpose.backward_hooks import raw_engine
from interpose.distributed import collective_values
from interpose.distributed.calls import dtype_of, flat_tensors, nbytes_of, reduce_op_name, user_call_site
from interpose.distributed.sink import CollectiveSink
from interpose.distributed.stash import TensorShelf, Watchdog, shelf_of


class SimWork(dist.Work):
    """Handle of one issued collective. ``wait`` = current stream waits (NCCL); never blocks the host.

    ``shelf`` holds the references ProcessGroupNCCL stashes for an async collective: ``wait`` and
    ``synchronize`` drop them (``WorkNCCL::synchronizeStream``), waiting on the future does not;
    otherwise the group's :class:`~interpose.distributed.stash.Watchdog` drops them."""

    def __init__(self, sink: CollectiveSink, handle: int, result: list[torch.Tensor],
                 shelf: TensorShelf | None = None, blocks_host: bool = False) -> None:
        super().__init__()
        self._sink = sink
        self._handle = handle
        self._result = result
        self._shelf = shelf
        self._joined = False
        self._blocks_host = blocks_host

    def wait(self, timeout: timedelta | None = None) -> bool:
        """A barrier's wait also blocks the host until every member arrived (``WorkNCCL::wait``
        synchronizes the stream when the work carries a barrier tensor): programs order real
        file-system work with it (rank 0 downloads, the others read after ``dist.barrier()``)."""
        self._join()
        if self._blocks_host:
            self._sink.host_wait(self._handle, what="dist.barrier()")
        if self._shelf is not None:
            self._shelf.unstash()
        return True

    def _join(self) -> None:
        """The current stream waits for the collective (a CUDA future's wait: no unstash)."""
        if not self._joined:
            self._joined = True
            self._sink.stream_wait(self._handle)

    def synchronize(self) -> None:
        self._sink.host_wait(self._handle)
        if self._shelf is not None:
            self._shelf.unstash()

    def is_completed(self) -> bool:
        return self._sink.is_completed(self._handle)

    def is_success(self) -> bool:
        return True

    def exception(self) -> None:
        return None

    def result(self) -> list[torch.Tensor]:
        return self._result

    def get_future(self) -> Future:
        """A completed future (values need no transfer); the stream join is deferred to the end of
        the running backward pass, where NCCL's CUDA future would be waited on (DDP's reducer)."""
        try:
            raw_engine().queue_callback(self._join)
        except RuntimeError:  # not inside backward
            self._join()
        fut: Future = Future()
        fut.set_result(self._result)
        return fut


class SimProcessGroup(dist.ProcessGroup):
    """One c10d group of the simulated job, as seen by one rank."""

    def __init__(self, rank: int, size: int, sink: CollectiveSink) -> None:
        super().__init__(rank, size)  # type: ignore[call-arg]  # the (rank, size) overload is not in torch's stub
        self._rank = rank
        self._size = size
        self._sink = sink
        self._seq = 0
        self._p2p_seq: dict[tuple[int, int], int] = {}
        self._name: str | None = None
        self._watchdog = Watchdog(sink, sink.host_us())

    # identity ----------------------------------------------------------------
    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def getBackendName(self) -> str:
        return "nccl"

    @property
    def group_name(self) -> str:  # type: ignore[override]  # c10d's GroupName is a str at runtime
        """c10d's name of this group; kept once read, because ``destroy_process_group`` asks for it
        (to unregister the group) after it deleted the group from ``pg_names``."""
        name = c10d._world.pg_names.get(self)
        if name is not None:
            self._name = name
        elif self._name is None:
            raise KeyError(f"{self!r} is not a registered process group (never named, or destroyed)")
        return name if name is not None else self._name

    def _set_group_name(self, name: str) -> None:
        """c10d names the group here when it creates it (before ``pg_names`` has it)."""
        self._name = name
        super()._set_group_name(name)  # type: ignore[arg-type]  # GroupName is a str at runtime

    def global_ranks(self) -> tuple[int, ...]:
        mapping = c10d._world.pg_group_ranks.get(self)
        if not mapping:
            return tuple(range(self._size))
        return tuple(g for g, _ in sorted(mapping.items(), key=lambda kv: kv[1]))

    # issuing -----------------------------------------------------------------
    def _issue(self, kind: CollectiveKind, payload: Any, result: list[torch.Tensor], opts: Any = None,
               root: int = -1, nbytes: int | None = None, splits: tuple[int, ...] = (),
               relay: bytes | None = None, inputs: Any = None) -> SimWork:
        """Hand the call to the sink. An async call (``opts.asyncOp``, true unless c10d's caller
        passed ``async_op=False``) stashes its inputs (``inputs``, else ``payload``) and outputs
        (:mod:`interpose.distributed.stash`)."""
        ranks = self.global_ranks()
        name = self.group_name
        call = CollectiveCall(
            key=f"{name}#{self._seq}",
            kind=kind,
            group=name,
            ranks=ranks,
            nbytes=nbytes_of(payload) if nbytes is None else nbytes,
            dtype=dtype_of(payload),
            reduce_op=reduce_op_name(opts),
            root=ranks[root] if 0 <= root < len(ranks) else -1,
            call_site=user_call_site(),
            splits=splits,
        )
        self._seq += 1
        handle = self._sink.issue(call, relay)
        shelf = None
        if getattr(opts, "asyncOp", True):
            shelf = shelf_of(flat_tensors(payload if inputs is None else inputs), flat_tensors(result))
        self._watchdog.enqueue(handle, shelf)
        return SimWork(self._sink, handle, result, shelf)

    def _p2p_call(self, kind: CollectiveKind, peer: int, nbytes: int, dtype: str) -> CollectiveCall:
        ranks = self.global_ranks()
        me, other = ranks[self._rank], ranks[peer]
        src, dst = (me, other) if kind is CollectiveKind.SEND else (other, me)
        n = self._p2p_seq.get((src, dst), 0)
        self._p2p_seq[(src, dst)] = n + 1
        return CollectiveCall(key=f"p2p:{self.group_name}:{src}-{dst}#{n}", kind=kind, group=self.group_name,
                              ranks=(src, dst), nbytes=nbytes, dtype=dtype, root=src, call_site=user_call_site())

    def _p2p(self, kind: CollectiveKind, tensors: list[torch.Tensor], peer: int) -> SimWork:
        call = self._p2p_call(kind, peer, nbytes_of(tensors), dtype_of(tensors))
        handle = self._sink.issue(call)
        self._watchdog.enqueue(handle, None)  # recordStream, not the stash (pointToPoint)
        return SimWork(self._sink, handle, tensors)

    def exchange_p2p(self, kind: CollectiveKind, payload: bytes | None, peer: int) -> bytes | None:
        """Object send/recv (``kind`` ``send`` or ``recv``, ``peer`` a group rank): the sender's
        pickle travels through the coordinator; ``recv`` blocks until it is there and returns it."""
        call = self._p2p_call(kind, peer, len(payload or b""), OBJECT_DTYPE)
        handle = self._sink.issue(call, payload)
        self._watchdog.enqueue(handle, None)
        if kind is CollectiveKind.SEND:
            return None
        return self._sink.payloads(handle)[0]

    # all-reduce family -------------------------------------------------------
    def allreduce(self, tensors, opts=None):
        """Small known integer data and real CPU data (:func:`collective_values.member_data`) is reduced over
        every member's values, relayed by the coordinator; other known data follows the symmetric-ranks rule."""
        op = reduce_op_name(opts)
        known = collective_values.member_data(list(tensors))
        if known is None:
            collective_values.all_reduce(tensors, op, self._size)
            return self._issue(CollectiveKind.ALL_REDUCE, tensors, tensors, opts)
        work = self._issue(CollectiveKind.ALL_REDUCE, tensors, tensors, opts, relay=collective_values.pack(known))
        collective_values.reduce_members(known, self._sink.relayed(work._handle), op, list(tensors))
        return work

    allreduce_coalesced = allreduce

    def reduce(self, tensors, opts=None):
        """As :meth:`allreduce`, the reduction landing on the root only (the other members' buffers stay as
        they were, as NCCL's in-place reduce leaves them)."""
        root = getattr(opts, "rootRank", 0)
        op = reduce_op_name(opts)
        known = collective_values.member_data(list(tensors))
        if known is None:
            if self._rank == root:
                collective_values.all_reduce(tensors, op, self._size)
            return self._issue(CollectiveKind.REDUCE, tensors, tensors, opts, root=root)
        work = self._issue(CollectiveKind.REDUCE, tensors, tensors, opts, root=root, relay=collective_values.pack(known))
        if self._rank == root:
            collective_values.reduce_members(known, self._sink.relayed(work._handle), op, list(tensors))
        return work

    def barrier(self, opts=None):
        work = self._issue(CollectiveKind.BARRIER, [], [], nbytes=4)
        work._blocks_host = True
        return work

    def broadcast(self, tensors, opts=None):
        """Known small integer data (:func:`collective_values.relayable`) gets the root's values, relayed by
        the coordinator; the other members wait for its answer without moving their host clocks (the
        values are read at a later sync, as on a GPU)."""
        root = getattr(opts, "rootRank", 0)
        known = collective_values.relayable(list(tensors))
        payload = collective_values.pack(known) if known is not None and self._rank == root else None
        work = self._issue(CollectiveKind.BROADCAST, tensors, tensors, opts, root=root, relay=payload)
        if known is not None and self._rank != root:
            got = self._sink.relayed(work._handle)
            if 0 <= root < len(got) and got[root] is not None:
                collective_values.unpack_into(known, got[root])
        return work

    # all-gather family -------------------------------------------------------
    def allgather(self, output_lists, inputs, opts=None):
        """As :meth:`allreduce`: one relayed input gives every member's values, others the symmetric rule."""
        known = collective_values.member_data(list(inputs)) if len(inputs) == 1 else None
        if known is None:
            for outs, inp in zip(output_lists, inputs, strict=False):
                collective_values.all_gather(outs, inp)
            return self._issue(CollectiveKind.ALL_GATHER, output_lists, flat_tensors(output_lists), opts,
                               inputs=inputs)
        work = self._issue(CollectiveKind.ALL_GATHER, output_lists, flat_tensors(output_lists), opts, inputs=inputs,
                           relay=collective_values.pack(known))
        collective_values.gather_members(list(output_lists[0]), self._sink.relayed(work._handle))
        return work

    def allgather_coalesced(self, output_lists, inputs, opts=None):
        return self.allgather(output_lists, inputs, opts)

    def _allgather_base(self, output, inp, opts=None):
        collective_values.adopt(output, inp)
        known = collective_values.member_data([inp])
        if known is None or not collective_values.tracked(output):
            collective_values.all_gather(list(output.chunk(self._size)) if collective_values.tracked(output) else [],
                                         inp)
            return self._issue(CollectiveKind.ALL_GATHER, output, [output], opts, inputs=inp)
        work = self._issue(CollectiveKind.ALL_GATHER, output, [output], opts, inputs=inp,
                           relay=collective_values.pack(known))
        collective_values.gather_members(list(output.chunk(self._size)), self._sink.relayed(work._handle))
        return work

    all_gather_single = _allgather_base

    def allgather_into_tensor_coalesced(self, outputs, inputs, opts=None):
        for o, i in zip(outputs, inputs, strict=False):
            collective_values.adopt(o, i)
            collective_values.all_gather(list(o.chunk(self._size)) if collective_values.tracked(o) else [], i)
        return self._issue(CollectiveKind.ALL_GATHER, outputs, list(outputs), opts, inputs=inputs)

    def all_gather_single_coalesced(self, outputs, inputs, opts=None):
        return self.allgather_into_tensor_coalesced(outputs, inputs, opts)

    def gather(self, output_lists, inputs, opts=None):
        for outs, inp in zip(output_lists, inputs, strict=False):
            collective_values.all_gather(outs, inp)
        return self._issue(CollectiveKind.GATHER, inputs, flat_tensors(output_lists), opts,
                           root=getattr(opts, "rootRank", 0), nbytes=nbytes_of(inputs) * self._size)

    # reduce-scatter family ---------------------------------------------------
    def reduce_scatter(self, outputs, input_lists, opts=None):
        for o, ins in zip(outputs, input_lists, strict=False):
            collective_values.reduce_scatter(o, ins, self._rank, reduce_op_name(opts), self._size)
        return self._issue(CollectiveKind.REDUCE_SCATTER, input_lists, list(outputs), opts)

    def _reduce_scatter_base(self, output, inp, opts=None):
        """Small known integer data and real CPU data is reduced over every member's values (relayed, as in
        :meth:`allreduce`) and this member keeps its chunk; other known data follows the symmetric rule."""
        op = reduce_op_name(opts)
        known = collective_values.member_data([inp])
        if known is None:
            collective_values.reduce_scatter(output, list(inp.chunk(self._size)) if collective_values.tracked(inp)
                                             else [], self._rank, op, self._size)  # fmt: skip
            return self._issue(CollectiveKind.REDUCE_SCATTER, inp, [output], opts)
        work = self._issue(CollectiveKind.REDUCE_SCATTER, inp, [output], opts, relay=collective_values.pack(known))
        collective_values.reduce_scatter_members(output, self._sink.relayed(work._handle), self._rank, op, self._size)
        return work

    reduce_scatter_single = _reduce_scatter_base

    def reduce_scatter_tensor_coalesced(self, outputs, inputs, opts=None):
        for o, i in zip(outputs, inputs, strict=False):
            collective_values.reduce_scatter(o, list(i.chunk(self._size)) if collective_values.tracked(i) else [],
                                     self._rank, reduce_op_name(opts), self._size)
        return self._issue(CollectiveKind.REDUCE_SCATTER, inputs, list(outputs), opts)

    def reduce_scatter_single_coalesced(self, outputs, inputs, opts=None):
        return self.reduce_scatter_tensor_coalesced(outputs, inputs, opts)

    def scatter(self, outputs, input_lists, opts=None):
        for o, ins in zip(outputs, input_lists, strict=False):
            if ins and self._rank < len(ins):
                collective_values.copy_into(o, ins[self._rank])
        return self._issue(CollectiveKind.SCATTER, outputs, list(outputs), opts,
                           root=getattr(opts, "rootRank", 0), nbytes=nbytes_of(outputs) * self._size,
                           inputs=input_lists)

    # all-to-all --------------------------------------------------------------
    def alltoall_base(self, output, inp, output_splits, input_splits, opts=None):
        collective_values.all_to_all_single(output, inp, output_splits, input_splits, self._rank, self._size)
        return self._issue(CollectiveKind.ALL_TO_ALL, inp, [output], opts, splits=send_splits(inp, input_splits, self._size))

    all_to_all_single = alltoall_base

    def alltoall(self, outputs, inputs, opts=None):
        collective_values.all_to_all(list(outputs), list(inputs), self._rank)
        return self._issue(CollectiveKind.ALL_TO_ALL, inputs, list(outputs), opts, splits=tuple(nbytes_of(i) for i in inputs))

    # object collectives (payloads relayed by the coordinator) --------------------
    def exchange(self, kind: CollectiveKind, payload: bytes | None, root: int = -1) -> tuple[bytes | None, ...]:
        """Send ``payload`` to the group; block until every member's payload is back."""
        ranks = self.global_ranks()
        size = len(payload) if payload is not None else 0
        call = CollectiveCall(key=f"{self.group_name}#{self._seq}", kind=kind, group=self.group_name,
                              ranks=ranks, nbytes=size * (self._size if kind is not CollectiveKind.BROADCAST_OBJECT else 1),
                              dtype="uint8", root=ranks[root] if 0 <= root < len(ranks) else -1,
                              call_site=user_call_site())
        self._seq += 1
        handle = self._sink.issue(call, payload)
        self._watchdog.enqueue(handle, None)
        return self._sink.payloads(handle)

    # point-to-point ----------------------------------------------------------
    def send(self, tensors, dst, tag=0):
        return self._p2p(CollectiveKind.SEND, tensors, dst)

    def recv(self, tensors, src, tag=0):
        return self._p2p(CollectiveKind.RECV, tensors, src)

    def __repr__(self) -> str:
        return f"SimProcessGroup(rank={self._rank}, size={self._size})"


def send_splits(inp: torch.Tensor, input_splits, n: int) -> tuple[int, ...]:
    """Bytes ``all_to_all_single`` sends to each group member: ``input_splits`` rows of dim 0
    (none given: equal parts)."""
    total = nbytes_of(inp)
    if not len(input_splits):
        return tuple([total // n] * n)
    row = total // inp.shape[0] if inp.dim() and inp.shape[0] else 0
    return tuple(int(s) * row for s in input_splits)
