"""The result cache returns exactly what FakeTensorMode would, with the right aliasing."""

from __future__ import annotations

import torch

import interpose.runner as runner
from interpose import interposed


def _meta(t: torch.Tensor) -> tuple:
    return (tuple(t.shape), t.stride(), t.dtype, t.device, t.storage_offset())


def test_cached_results_match_first_results(cfg):
    with interposed(cfg):
        cache = runner._state.mode.outputs
        a = torch.randn(8, 1, 16, device="cuda")
        b = torch.randn(4, 16, device="cuda", dtype=torch.bfloat16)
        fns = {
            "broadcast add": lambda: a + b,
            "transpose": lambda: b.t(),
            "slice": lambda: a[2:5],
            "contiguous": lambda: b.t().contiguous(),
            "mm": lambda: b @ b.t(),
            "softmax": lambda: torch.softmax(a, -1),
            "max": lambda: a.max(dim=-1),
        }
        first = {k: f() for k, f in fns.items()}
        hits0 = cache.hits
        for k, f in fns.items():
            again = f()
            ref = first[k]
            if isinstance(ref, tuple):
                assert [_meta(x) for x in again] == [_meta(x) for x in ref], k
            else:
                assert _meta(again) == _meta(ref), k
        assert cache.hits > hits0


def test_views_alias_and_inplace_returns_self(cfg):
    with interposed(cfg):
        x = torch.randn(6, 4, device="cuda")
        for _ in range(2):  # second round is served from the cache
            v = x.view(4, 6)
            assert v.untyped_storage()._cdata == x.untyped_storage()._cdata
            y = x.add_(1.0)
            assert y is x
            torch._foreach_mul_([x, x], 2.0)  # mutates, returns nothing at the aten level
        before = torch.cuda.memory_allocated()
        vs = [x.t() for _ in range(10)]
        assert torch.cuda.memory_allocated() == before  # views allocate nothing
        del vs
