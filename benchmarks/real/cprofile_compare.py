"""Side by side: where a real GPU host's Python goes in the timed steps, and where the same program's goes
under the shim (issues 19/20: which functions the host-time model misses or mis-scales).

Both sides are ``frameworks_timing.py --cprofile F`` runs (cProfile over the steps after the warm-up ones,
``F.pstats`` beside the text summary); on the simulating side under ``phantora run``::

    python benchmarks/real/cprofile_compare.py REAL.pstats SHIM.pstats --steps 8 [--top 40] [--json]

Per function (file:line:name, directories stripped): calls per step and own time (tottime) per step on
each side, and real / shim. The shim's side includes the shim itself (``interpose/``, FakeTensor); a pure
Python framework function should come out near the two hosts' benchmark ratio.
"""

from __future__ import annotations

import argparse
import json
import pstats
from pathlib import Path


def per_step(path: Path, steps: int) -> dict[str, tuple[float, float]]:
    st = pstats.Stats(str(path))
    out: dict[str, tuple[float, float]] = {}
    for (file, line, fn), (_cc, nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        key = f"{Path(file).name}:{line}({fn})"
        calls, own = out.get(key, (0.0, 0.0))
        out[key] = (calls + nc / steps, own + tt * 1e3 / steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("shim", type=Path)
    ap.add_argument("--steps", type=int, required=True, help="timed steps in each profile")
    ap.add_argument("--shim-steps", type=int, help="if the shim run timed a different number")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    real, shim = per_step(a.real, a.steps), per_step(a.shim, a.shim_steps or a.steps)
    rows = []
    for key, (calls, own) in sorted(real.items(), key=lambda kv: -kv[1][1])[: a.top]:
        s_calls, s_own = shim.get(key, (0.0, 0.0))
        rows.append({"function": key, "real_calls": round(calls, 1), "real_ms": round(own, 3),
                     "shim_calls": round(s_calls, 1), "shim_ms": round(s_own, 3),
                     "ratio": round(own / s_own, 2) if s_own else None})  # fmt: skip
    totals = {"real_ms_per_step": round(sum(v[1] for v in real.values()), 2),
              "shim_ms_per_step": round(sum(v[1] for v in shim.values()), 2)}  # fmt: skip
    if a.json:
        for r in rows:
            print(json.dumps(r))
        print(json.dumps(totals))
        return
    print(f"{'function':60s} {'calls':>8s} {'real ms':>9s} {'calls':>8s} {'shim ms':>9s} {'ratio':>6s}")
    for r in rows:
        print(
            f"{r['function'][:60]:60s} {r['real_calls']:8.1f} {r['real_ms']:9.3f} {r['shim_calls']:8.1f} "
            f"{r['shim_ms']:9.3f} {r['ratio'] if r['ratio'] is not None else '-':>6}"
        )
    print(totals)


if __name__ == "__main__":
    main()
