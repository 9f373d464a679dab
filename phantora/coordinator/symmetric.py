"""Symmetric (folded) runs: execute one rank, let the network carry every rank's traffic.

Why: data-, tensor- and fully-sharded-parallel jobs are SPMD — every rank runs the same ops
on same-shaped tensors and issues the same collectives at the same times, each on its own
copy of a group (its tensor-parallel group, its data-parallel group ...). Simulating 512
identical processes on a laptop costs 512× the CPU and memory of one, yet only the
*network* sees the difference between them. So ``phantora run --symmetric`` executes rank 0
alone and, for each collective it issues on a group ``G``, also submits the same collective
on every sibling group of ``G``: the translates ``o + G`` that partition the world. Rank 0's
collective then finishes under contention with all of them, as in the full run.

The siblings are derived, not observed: a group's family is found greedily (the smallest
rank not yet covered starts the next translate). That is exactly the family of every
DeviceMesh dimension (and of any slice of dimensions) on a row-major mesh, and of the world
group. A group whose translates do not tile the world (a pipeline stage's group, a hand-made
subgroup) cannot be folded and is refused with a clear error, as are point-to-point ops.
"""

from __future__ import annotations

from functools import cache


class NotSymmetricError(ValueError):
    """The collective's group has no family of translates tiling the world."""


@cache
def sibling_offsets(ranks: tuple[int, ...], world_size: int) -> tuple[int, ...]:
    """Offsets ``o ≠ 0`` such that the groups ``o + ranks`` and ``ranks`` partition ``range(world_size)``.

    Raises :class:`NotSymmetricError` when no such partition exists.
    """
    base = min(ranks)
    shape = sorted(r - base for r in ranks)
    covered = [False] * world_size
    offsets: list[int] = []
    for start in range(world_size):
        if covered[start]:
            continue
        members = [start + d for d in shape]
        if members[-1] >= world_size or any(covered[m] for m in members):
            raise NotSymmetricError(
                f"group of ranks {list(ranks)} is not one of a set of translated copies that tile the "
                f"{world_size} ranks (rank {start} has no copy of it)")
        for m in members:
            covered[m] = True
        offsets.append(start - base)
    return tuple(o for o in offsets if o != 0)
