"""The value policy: where values come from for what the simulator cannot know.

Index-producing ops on unknown floats (``argmax``/``argmin``, ``max``/``min`` over a dim, ``topk``,
``sort``, ``multinomial``) take their indices from a seeded, deterministic :class:`ValuePolicy`
(``balanced``, ``uniform``, ``skewed:<s>``), so MoE routing, sampling and argmax decoding have
definite values; ``isnan``/``isinf`` of unknown floats read False and ``isfinite`` True (fake
floats are taken to be finite numbers). :mod:`interpose.values` applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

aten = torch.ops.aten

POLICIES = ("balanced", "uniform", "skewed")


@dataclass(frozen=True, kw_only=True, slots=True)
class ValuePolicy:
    """Where values come from for what the simulator cannot know (scenario ``values:``)."""

    policy: str = "balanced"
    """``balanced``: index ops spread evenly over the index range (top-k routing gives every expert
    tokens·k/E tokens; argmax/sampling visit tokens in a pseudo-random bijective order, so a row hits
    a given token, e.g. EOS, with probability 1/V per step); ``uniform``: independent uniform draws;
    ``skewed``: Zipf-distributed draws with exponent :attr:`zipf_s` (index 0 hottest)."""
    zipf_s: float = 1.0
    """Exponent of ``skewed`` (``skewed:1.2``)."""
    seed: int = 0
    """Seeds the policy's draws and the simulated GPU's random factories (``randint`` ...)."""
    cap_bytes: int = 16 << 20
    """Largest storage given a shadow; bigger ones stay unknown (placeholders)."""
    small_float_numel: int = 64
    """Floating tensors from the host or factories are known up to this many elements (scalars the
    host puts on the GPU: loss scales, flags, step counters); larger ones never are."""

    @classmethod
    def parse(cls, text: str, **kw: Any) -> ValuePolicy:
        """``balanced`` | ``uniform`` | ``skewed:<s>``; raises ``ValueError`` naming the valid forms."""
        name, _, arg = text.partition(":")
        if name not in POLICIES or (arg and name != "skewed"):
            raise ValueError(f"unknown value policy {text!r}: expected balanced, uniform or skewed:<s>")
        if name == "skewed":
            try:
                s = float(arg) if arg else 1.0
            except ValueError:
                raise ValueError(f"value policy {text!r}: the Zipf exponent must be a number") from None
            if not (s >= 0.0 and math.isfinite(s)):
                raise ValueError(f"value policy {text!r}: the Zipf exponent must be finite and >= 0")
            return cls(policy=name, zipf_s=s, **kw)
        return cls(policy=name, **kw)

    def text(self) -> str:
        return f"skewed:{self.zipf_s:g}" if self.policy == "skewed" else self.policy


_P = 1_000_003  # a prime: x -> (x * _P + q) mod n is a bijection on Z_n whenever n % _P != 0


@dataclass
class IndexSource:
    """Draws index tensors for index ops on unknown data, per :class:`ValuePolicy`."""

    policy: ValuePolicy
    counter: int = 0
    gen: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.gen = torch.Generator().manual_seed(self.policy.seed)

    def draw(self, rows: int, n: int, k: int, distinct: bool = True) -> torch.Tensor:
        """``[rows, k]`` int64 indices into ``range(n)``; distinct within a row when ``distinct``."""
        p = self.policy
        if n <= 0 or rows * k == 0:
            return torch.zeros(rows, k, dtype=torch.long)
        if p.policy == "balanced":
            x = self.counter + torch.arange(rows * k, dtype=torch.long).view(rows, k)
            self.counter += rows * k
            mult = _P if n % _P else 1
            return (x * mult + p.seed) % n
        if p.policy == "uniform":
            w = torch.ones(n)
        else:
            w = 1.0 / torch.arange(1, n + 1, dtype=torch.float64).pow(p.zipf_s)
        replacement = not distinct or k > n
        return torch.multinomial(w.expand(rows, n), k, replacement=replacement, generator=self.gen)


def _indices_along(src: IndexSource, shape: tuple[int, ...], dim: int, k: int, keepdim: bool) -> torch.Tensor:
    """Indices shaped like a reduction of ``shape`` along ``dim`` keeping ``k`` entries."""
    if not shape:
        return torch.zeros((), dtype=torch.long)
    dim %= len(shape)
    rest = [s for i, s in enumerate(shape) if i != dim]
    idx = src.draw(math.prod(rest), shape[dim], k).view(*rest, k).movedim(-1, dim)
    return idx if keepdim or k != 1 else idx.squeeze(dim)


def _argmax_like(src, args, kwargs):
    x = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if dim is None:
        i = src.draw(1, x.numel(), 1)[0, 0]
        return i.view([1] * x.dim()) if keepdim else i
    return _indices_along(src, tuple(x.shape), dim, 1, keepdim)


def _max_dim(src, args, kwargs):
    x, dim = args[0], args[1]
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return 1, _indices_along(src, tuple(x.shape), dim, 1, keepdim)


def _topk(src, args, kwargs):
    x, k = args[0], args[1]
    dim = args[2] if len(args) > 2 else kwargs.get("dim", -1)
    return 1, _indices_along(src, tuple(x.shape), dim, k, True)


def _sort(src, args, kwargs):
    x = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)  # sort.stable takes dim as a kwarg
    if x.dim() == 0:
        return 1, torch.zeros((), dtype=torch.long)
    return 1, _indices_along(src, tuple(x.shape), dim, x.shape[dim], True)


def _multinomial(src, args, kwargs):
    probs, n = args[0], args[1]
    replacement = args[2] if len(args) > 2 else kwargs.get("replacement", False)
    rows = 1 if probs.dim() == 1 else probs.shape[0]
    idx = src.draw(rows, probs.shape[-1], n, distinct=not replacement)
    return idx.view(n) if probs.dim() == 1 else idx


# op -> (src, args, kwargs) -> indices, or (output position, indices)
INDEX_OPS = {
    aten.argmax.default: _argmax_like,
    aten.argmin.default: _argmax_like,
    aten.max.dim: _max_dim,
    aten.min.dim: _max_dim,
    aten.topk.default: _topk,
    aten.sort.default: _sort,
    aten.sort.stable: _sort,
    aten.multinomial.default: _multinomial,
}
FINITE_OPS = {aten.isnan.default: False, aten.isinf.default: False, aten.isposinf.default: False,
              aten.isneginf.default: False, aten.isfinite.default: True}  # fmt: skip
"""Classification of unknown floats: taken to be finite numbers."""
