"""The fitted fallback answers only near the work it was fitted on: an op-level fit on 100-element
norms (all ~4 us) extrapolated to an 8M-element norm said 33 ms (Megatron's gradient clipping, issue 20)."""

from __future__ import annotations

from profiles import get_gpu
from profiles.replay import EXTRAPOLATION_LIMIT, FitTable
from profiles.store import ProfileEntry

OP = "aten.linalg_vector_norm.default"


def _entry(op: str, n: int, dur: float) -> ProfileEntry:
    return ProfileEntry(key=f"{op}|{n}|float32|c|", op=op, family="reduction", dtype="float32", shapes=str(n),
                        bytes=4.0 * n + 4, n_tensors=2, dur_us=dur)


def test_a_fit_does_not_extrapolate_far_past_its_entries():
    gpu = get_gpu("h200")
    small = {e.key: e for e in (_entry(OP, n, 4.0 + n * 1e-3) for n in (52, 76, 100, 148))}
    table = FitTable(gpu, small)
    near = table.predict(OP, "reduction", "float32", 0.0, 4.0 * 120, 2)
    assert near is not None and 3.5 < near < 5  # inside the fit set: the fit answers
    assert table.predict(OP, "reduction", "float32", 0.0, 4.0 * 8 * 2**20, 2) is None  # roofline then
    # a broader level fitted on larger reductions answers instead
    big = {e.key: e for e in (_entry("aten.sum.default", n, 5.0 + 4 * n / 3e6) for n in (2**20, 2**22, 2**24))}
    table = FitTable(gpu, small | big)
    far = table.predict(OP, "reduction", "float32", 0.0, 4.0 * 8 * 2**20, 2)
    assert far is not None and far < 100, far
    assert EXTRAPOLATION_LIMIT >= 2
