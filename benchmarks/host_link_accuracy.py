"""Held-out check of the measured host-link curves (profiles/host_link.py): interpolate each variant from
the sizes 4^k KiB (1 KiB, 16 KiB, ..., 64 MiB) only and predict the sizes in between (4 KiB, 64 KiB, ...,
256 MiB, the last one extrapolated at 64 MiB's bandwidth), against the measured median time per copy.

    python benchmarks/host_link_accuracy.py [profiles/data/h200/host_link.ndjson]
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from profiles.host_link import DATA_DIR, HostLink, load_rows


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR / "h200" / "host_link.ndjson"
    rows = [r for r in load_rows(path) if not r.get("context")]  # the idle curves (``busy`` rows: not checked here)
    fit = [r for r in rows if round(math.log(r["bytes"] / 1024, 4)) % 2 == 0]
    held = [r for r in rows if r not in fit]
    curves = HostLink(fit)._curves
    errs: dict[tuple, list[float]] = {}
    for r in held:
        key = (r["dir"], r["pinned"], r["non_blocking"])
        pred = curves[key].at(r["bytes"])
        errs.setdefault(key, []).append(pred / r["median_us"] - 1)
        print(f"{r['dir']} {'pinned' if r['pinned'] else 'pageable':8} {'nb ' if r['non_blocking'] else 'blk'} "
              f"{r['bytes']:>10} B  measured {r['median_us']:>10.1f} us  predicted {pred:>10.1f}  {pred / r['median_us'] - 1:+.1%}")
    allabs = [abs(e) for v in errs.values() for e in v]
    for key, v in errs.items():
        print(key, "median |err|", f"{statistics.median(abs(e) for e in v):.1%}", "max", f"{max(abs(e) for e in v):.1%}")
    print(f"all held-out points: n={len(allabs)} median |err| {statistics.median(allabs):.1%} max {max(allabs):.1%}")


if __name__ == "__main__":
    main()
