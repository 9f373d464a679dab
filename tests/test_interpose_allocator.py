"""The caching-allocator model reproduces PyTorch's rounding, pools, splitting and OOM."""

from __future__ import annotations

import pytest

from interpose.allocator import CachingAllocator, SimulatedOOM, round_size, segment_size

MiB = 1 << 20


def test_round_size_512_granular():
    assert round_size(1) == 512
    assert round_size(512) == 512
    assert round_size(513) == 1024
    assert round_size(4 * MiB + 1) == 4 * MiB + 512


def test_segment_sizes_follow_pool_rules():
    assert segment_size(512) == 2 * MiB
    assert segment_size(1 * MiB) == 2 * MiB
    assert segment_size(1 * MiB + 512) == 20 * MiB
    assert segment_size(10 * MiB - 512) == 20 * MiB
    assert segment_size(10 * MiB) == 10 * MiB
    assert segment_size(11 * MiB) == 12 * MiB


def test_small_blocks_share_a_2mib_segment():
    a = CachingAllocator(80 << 30)
    blocks = [a.malloc(1000) for _ in range(4)]
    assert a.allocated_bytes == 4 * 1024
    assert a.reserved_bytes == 2 * MiB
    for b in blocks:
        a.free(b)
    assert a.allocated_bytes == 0
    assert a.reserved_bytes == 2 * MiB  # cached, not returned
    assert a.stats().segments == 1


def test_large_request_carves_20mib_segment_and_reuses_it():
    a = CachingAllocator(80 << 30)
    b1 = a.malloc(4 * MiB)
    assert a.reserved_bytes == 20 * MiB
    b2 = a.malloc(8 * MiB)
    assert a.reserved_bytes == 20 * MiB
    assert a.allocated_bytes == 12 * MiB
    a.free(b1)
    a.free(b2)
    a.malloc(15 * MiB)  # fits once the two freed blocks and the tail merge back
    assert a.reserved_bytes == 20 * MiB


def test_unsplit_remainder_counts_whole_block():
    a = CachingAllocator(80 << 30)
    big = a.malloc(19 * MiB)  # 20 MiB segment, remainder 1 MiB: not split (must be > 1 MiB)
    assert a.allocated_bytes == 20 * MiB
    a.free(big)
    assert a.allocated_bytes == 0


def test_large_requests_round_to_2mib_segments():
    a = CachingAllocator(80 << 30)
    a.malloc(11 * MiB)
    assert a.reserved_bytes == 12 * MiB
    assert a.allocated_bytes == 12 * MiB  # 1 MiB tail is not > 1 MiB: block stays whole
    a.malloc(21 * MiB)
    assert a.reserved_bytes == 12 * MiB + 22 * MiB
    assert a.allocated_bytes == 12 * MiB + 22 * MiB


def test_peaks_and_reset():
    a = CachingAllocator(80 << 30)
    b = a.malloc(30 * MiB)
    a.free(b)
    assert a.peak_allocated_bytes == 30 * MiB
    a.reset_peak()
    assert a.peak_allocated_bytes == 0
    assert a.peak_reserved_bytes == 30 * MiB


def test_oom_after_releasing_cache():
    a = CachingAllocator(64 * MiB)
    b = a.malloc(40 * MiB)
    a.free(b)
    a.malloc(50 * MiB)  # cached 40 MiB segment is released first, so this fits
    assert a.reserved_bytes == 50 * MiB
    with pytest.raises(SimulatedOOM) as ei:
        a.malloc(20 * MiB)
    assert ei.value.request_bytes == 20 * MiB
    assert a.stats().num_ooms == 1


def test_empty_cache_keeps_live_segments():
    a = CachingAllocator(80 << 30)
    live = a.malloc(30 * MiB)
    dead = a.malloc(12 * MiB)
    a.free(dead)
    a.empty_cache()
    assert a.reserved_bytes == 30 * MiB
    a.free(live)
    a.empty_cache()
    assert a.reserved_bytes == 0
