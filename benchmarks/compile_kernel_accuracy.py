"""Accuracy of the fused-kernel bytes model (``profiles.families.triton``) on recorded H200 kernels.

Fits on the ``fit`` rows of ``profiles/data/<gpu>/compiled_kernels*.ndjson`` and prints the error on
the ``heldout`` rows (never fitted on), per kind and overall, plus the fitted constants.
``python benchmarks/compile_kernel_accuracy.py [GPU]`` (default h200).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from profiles.families.triton import TritonBytesModel, error_pct, fit, kind_of


def main() -> None:
    gpu = sys.argv[1] if len(sys.argv) > 1 else "h200"
    folder = Path(__file__).resolve().parents[1] / "profiles" / "data" / gpu
    rows = [json.loads(line) for f in sorted(folder.glob("compiled_kernels*.ndjson"))
            for line in f.read_text().splitlines() if line.strip()]
    fit_rows = [r for r in rows if r.get("split") == "fit"]
    held = [r for r in rows if r.get("split") == "heldout"]
    params = fit(fit_rows, "compiled_kernels")
    model = TritonBytesModel(params)
    for kind, p in sorted(params.items()):
        print(f"{kind}: floor {p.floor_us:.2f} us, bandwidth {p.bandwidth_gbps:.0f} GB/s")
    print(f"fit rows {len(fit_rows)}, held-out rows {len(held)}")
    for name, part in (("fit", fit_rows), ("heldout", held)):
        by_kind: dict[str, list[float]] = {}
        for r in part:
            by_kind.setdefault(kind_of(r["kernel"]), []).append(error_pct(model, [r])[0])
        for kind, errs in sorted(by_kind.items()):
            print(f"{name} {kind}: n={len(errs)} median |err| {statistics.median(abs(e) for e in errs):.1f}% "
                  f"median err {statistics.median(errs):+.1f}% max |err| {max(abs(e) for e in errs):.1f}%")
        errs = error_pct(model, part)
        print(f"{name} all: n={len(errs)} median |err| {statistics.median(abs(e) for e in errs):.1f}%")


if __name__ == "__main__":
    main()
