"""Iterations from outermost optimizer steps when a program steps several optimizers.

A training step of a GAN (discriminator, then generator), of a model with two optimizers over its
parameter groups (Muon + AdamW), or of a wrapper that is not a ``torch.optim.Optimizer`` but steps
several inner ones in turn (Megatron's ``ChainedOptimizer``) issues several outermost steps per
iteration. Counting each as an iteration would average short half-iterations into ms/iter. The
sequence of optimizers stepped is periodic in such programs (``D G D G``, ``D D D D D G``); one
period is one iteration. Where the sequence has no period the steps stay iterations of their own and
the kind says ``optimizer_step_irregular``, so the summary does not pass them off as training steps.
"""

from __future__ import annotations


def _period(ids: list[int]) -> int | None:
    """Smallest p with ``ids[i] == ids[i - p]`` for every i >= p, at least two whole periods long
    and holding every optimizer; None where there is none."""
    distinct = len(set(ids))
    for p in range(distinct, len(ids) // 2 + 1):
        if all(ids[i] == ids[i - p] for i in range(p, len(ids))):
            return p
    return None


def group_steps(steps: list[tuple[float, float]], opt_ids: list[int]) -> tuple[list[tuple[float, float]], str]:
    """The iterations (start, end) and their kind from per-step spans and the stepped optimizers' ids.

    One optimizer: every step is an iteration (gradient accumulation steps it once per N micro-batches,
    so an iteration holds all N). Several: one period of the stepping pattern per iteration; a trailing
    partial period is an iteration of its own (the run stopped mid-pattern)."""
    if len(set(opt_ids)) <= 1 or len(opt_ids) != len(steps):
        return list(steps), "optimizer_step"
    p = _period(opt_ids)
    if p is None:
        return list(steps), "optimizer_step_irregular"
    return [(steps[i][0], steps[min(i + p, len(steps)) - 1][1]) for i in range(0, len(steps), p)], "optimizer_step"
