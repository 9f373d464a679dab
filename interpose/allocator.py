"""A model of PyTorch's CUDA caching allocator (``c10/cuda/CUDACachingAllocator.cpp``).

Only sizes matter (fake tensors hold no data), but they must match what a real
GPU reports: ``memory_allocated`` counts *rounded block sizes* (a block that is
not split is counted whole), ``memory_reserved`` counts segments obtained from
``cudaMalloc``. The rules reproduced here:

- requests round up to multiples of 512 bytes (minimum 512);
- requests <= 1 MiB come from the small pool, carved out of 2 MiB segments;
  larger ones from the large pool, whose new segments are 20 MiB for requests
  < 10 MiB and the request rounded up to 2 MiB otherwise;
- a free block is chosen best-fit (smallest that fits, then lowest address) and
  split when the remainder is >= 512 bytes (small pool) or > 1 MiB (large pool);
- freed blocks merge with free neighbours in their segment and stay cached;
- when a new segment would exceed the memory limit, cached free segments are
  released first (like ``empty_cache``) and only then is OOM raised.

Streams (per-stream pools), ``max_split_size_mb`` and expandable segments are not
modelled.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interpose.memory_history import MemoryHistory

MIN_BLOCK_BYTES = 512
SMALL_REQUEST_BYTES = 1 << 20  # kSmallSize
SMALL_SEGMENT_BYTES = 2 << 20  # kSmallBuffer
LARGE_SEGMENT_BYTES = 20 << 20  # kLargeBuffer
MIN_LARGE_ALLOC_BYTES = 10 << 20  # kMinLargeAlloc
ROUND_LARGE_BYTES = 2 << 20  # kRoundLarge


def round_size(nbytes: int) -> int:
    """Block size the allocator hands out for a request of ``nbytes``."""
    if nbytes < MIN_BLOCK_BYTES:
        return MIN_BLOCK_BYTES
    return -(-nbytes // MIN_BLOCK_BYTES) * MIN_BLOCK_BYTES


def segment_size(block_bytes: int) -> int:
    """Size of the ``cudaMalloc`` made when no cached block fits ``block_bytes``."""
    if block_bytes <= SMALL_REQUEST_BYTES:
        return SMALL_SEGMENT_BYTES
    if block_bytes < MIN_LARGE_ALLOC_BYTES:
        return LARGE_SEGMENT_BYTES
    return -(-block_bytes // ROUND_LARGE_BYTES) * ROUND_LARGE_BYTES


class SimulatedOOM(Exception):
    """Raised by :class:`CachingAllocator` when the limit is exceeded; turned into
    ``torch.cuda.OutOfMemoryError`` by the shim."""

    def __init__(self, request_bytes: int, allocator: CachingAllocator) -> None:
        self.request_bytes = request_bytes
        self.allocated_bytes = allocator.allocated_bytes
        self.reserved_bytes = allocator.reserved_bytes
        self.limit_bytes = allocator.limit_bytes
        super().__init__(request_bytes)


class Block:
    """A contiguous range inside a segment; free blocks sit in their pool's index."""

    __slots__ = ("addr", "free", "next", "prev", "requested", "segment", "size")

    def __init__(self, segment: Segment, addr: int, size: int) -> None:
        self.segment = segment
        self.addr = addr
        self.size = size
        self.requested = size
        """Bytes asked for (``size`` is what is handed out); memory history traces report it, as PyTorch's do."""
        self.free = True
        self.prev: Block | None = None
        self.next: Block | None = None


class Segment:
    __slots__ = ("addr", "head", "size", "small")

    def __init__(self, addr: int, size: int, small: bool) -> None:
        self.addr = addr
        self.size = size
        self.small = small
        self.head = Block(self, addr, size)


class _Pool:
    """Free blocks ordered by (size, address) for best-fit lookup."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[tuple[int, int], Block] = {}

    def add(self, b: Block) -> None:
        k = (b.size, b.addr)
        bisect.insort(self.keys, k)
        self.blocks[k] = b

    def remove(self, b: Block) -> None:
        k = (b.size, b.addr)
        i = bisect.bisect_left(self.keys, k)
        del self.keys[i]
        del self.blocks[k]

    def best_fit(self, size: int) -> Block | None:
        i = bisect.bisect_left(self.keys, (size, -1))
        if i == len(self.keys):
            return None
        return self.blocks[self.keys[i]]


@dataclass
class AllocatorStats:
    allocated_bytes: int
    reserved_bytes: int
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    active_blocks: int
    segments: int
    num_allocs: int
    num_frees: int
    num_ooms: int


class CachingAllocator:
    """Sizes-only model of the CUDA caching allocator for one device."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.allocated_bytes = 0
        self.reserved_bytes = 0
        self.peak_allocated_bytes = 0
        self.peak_reserved_bytes = 0
        self.num_allocs = 0
        self.num_frees = 0
        self.num_ooms = 0
        self._small = _Pool()
        self._large = _Pool()
        self._segments: dict[int, Segment] = {}
        self._active = 0
        self._next_addr = itertools.count(1)
        self.history: MemoryHistory | None = None
        """Where alloc/free events go while ``_record_memory_history`` is on."""

    # -- allocation -------------------------------------------------------------
    def malloc(self, nbytes: int) -> Block:
        """Allocate a block for ``nbytes``; raises :class:`SimulatedOOM` past the limit."""
        size = round_size(nbytes)
        small = size <= SMALL_REQUEST_BYTES
        pool = self._small if small else self._large
        block = pool.best_fit(size)
        if block is None:
            block = self._new_segment(size, small, nbytes)
        pool.remove(block)
        remaining = block.size - size
        if (remaining >= MIN_BLOCK_BYTES) if small else (remaining > SMALL_REQUEST_BYTES):
            rest = Block(block.segment, block.addr + size, remaining)
            rest.prev, rest.next = block, block.next
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = size
            pool.add(rest)
        block.free = False
        self.allocated_bytes += block.size
        self._active += 1
        self.num_allocs += 1
        if self.allocated_bytes > self.peak_allocated_bytes:
            self.peak_allocated_bytes = self.allocated_bytes
        block.requested = nbytes
        if self.history is not None and self.history.enabled:
            self.history.record("alloc", block.addr, nbytes)
        return block

    def _new_segment(self, size: int, small: bool, request: int) -> Block:
        seg_bytes = segment_size(size)
        if self.reserved_bytes + seg_bytes > self.limit_bytes:
            self.empty_cache()
            if self.reserved_bytes + seg_bytes > self.limit_bytes:
                self.num_ooms += 1
                raise SimulatedOOM(request, self)
        # addresses are 2 MiB-granular and unique; only their order inside a segment matters
        seg = Segment(next(self._next_addr) << 40, seg_bytes, small)
        self._segments[seg.addr] = seg
        self.reserved_bytes += seg_bytes
        if self.reserved_bytes > self.peak_reserved_bytes:
            self.peak_reserved_bytes = self.reserved_bytes
        if self.history is not None and self.history.enabled:
            self.history.record("segment_alloc", seg.addr, seg_bytes)
        (self._small if small else self._large).add(seg.head)
        return seg.head

    def free(self, block: Block) -> None:
        """Return a block to its pool, merging it with free neighbours."""
        if block.free:
            return
        self.allocated_bytes -= block.size
        self._active -= 1
        self.num_frees += 1
        if self.history is not None and self.history.enabled:
            self.history.record("free_completed", block.addr, block.requested)
        pool = self._small if block.segment.small else self._large
        block.free = True
        nxt = block.next
        if nxt is not None and nxt.free:
            pool.remove(nxt)
            _absorb(block, nxt)
        prv = block.prev
        if prv is not None and prv.free:
            pool.remove(prv)
            _absorb(prv, block)
            block = prv
        pool.add(block)

    def empty_cache(self) -> None:
        """Release every segment that holds no live block (``torch.cuda.empty_cache``)."""
        for addr, seg in list(self._segments.items()):
            head = seg.head
            if head.free and head.size == seg.size:
                (self._small if seg.small else self._large).remove(head)
                del self._segments[addr]
                self.reserved_bytes -= seg.size
                if self.history is not None and self.history.enabled:
                    self.history.record("segment_free", addr, seg.size)

    def segments(self) -> Iterator[Segment]:
        """Reserved segments in address order (for ``_snapshot``)."""
        return iter(sorted(self._segments.values(), key=lambda seg: seg.addr))

    def reset_peak(self) -> None:
        self.peak_allocated_bytes = self.allocated_bytes
        self.peak_reserved_bytes = self.reserved_bytes

    def stats(self) -> AllocatorStats:
        return AllocatorStats(
            allocated_bytes=self.allocated_bytes,
            reserved_bytes=self.reserved_bytes,
            peak_allocated_bytes=self.peak_allocated_bytes,
            peak_reserved_bytes=self.peak_reserved_bytes,
            active_blocks=self._active,
            segments=len(self._segments),
            num_allocs=self.num_allocs,
            num_frees=self.num_frees,
            num_ooms=self.num_ooms,
        )


def _absorb(left: Block, right: Block) -> None:
    """Merge the free block ``right`` into its neighbour ``left`` (same segment, adjacent)."""
    left.size += right.size
    left.next = right.next
    if right.next is not None:
        right.next.prev = left
