"""The table of docs/validation.md "torch.compile (issue 18)": real H200 runs (the logs of
benchmarks/real/compile_real.sh, docs/data/compile/h200_compile_logs.tgz) against the simulated ones
(benchmarks/compile_validation.sh, docs/data/compile/sim_*.summary.json).

Real ms/iter is each run's "mean ms/iter (excluding first)" (mean over repeats, min–max beside it);
simulated is ``mean_ms_per_iter_excluding_first``. ``python benchmarks/compile_validation_report.py``.
"""

from __future__ import annotations

import json
import re
import statistics
import tarfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "docs" / "data" / "compile"
CONFIGS = ("gpt", "nano", "cnn")


def real_runs() -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(config, eager|compiled) -> [(ms/iter, max_memory_allocated MiB)] per repeat."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tarfile.open(DATA / "h200_compile_logs.tgz") as tar:
        for m in tar.getmembers():
            name = re.match(r"logs/(\w+?)_(eager|compiled)_\d\.log$", m.name)
            f = tar.extractfile(m) if name else None
            if f is None or name is None:
                continue
            text = f.read().decode()
            ms = re.search(r"mean ms/iter \(excluding first\): ([\d.]+)", text)
            mem = re.search(r"max_memory_allocated: ([\d.]+) MiB", text)
            if ms and mem:
                out.setdefault((name.group(1), name.group(2)), []).append((float(ms.group(1)), float(mem.group(1))))
    return out


def main() -> None:
    real = real_runs()
    print("| config | mode | real ms/iter (mean, min–max, n) | sim ms/iter | time error | real peak alloc MiB "
          "| sim peak alloc MiB | alloc error | GPU time by source (all kernels) |")
    print("|---|---|---|---|---|---|---|---|---|")
    speed = {}
    for c in CONFIGS:
        for mode in ("eager", "compiled"):
            runs = real.get((c, mode), [])
            path = DATA / f"sim_{c}_{mode}.summary.json"
            if not runs or not path.exists():
                continue
            s = json.loads(path.read_text())
            ms = [r[0] for r in runs]
            real_ms, real_mem = statistics.mean(ms), statistics.mean(r[1] for r in runs)
            sim_ms, sim_mem = s["mean_ms_per_iter_excluding_first"], s["peak_allocated_bytes"] / 2**20
            cov = s.get("coverage", {})
            total = sum(v["dur_us"] for v in cov.values()) or 1.0
            srcs = ", ".join(f"{k} {100 * v['dur_us'] / total:.0f}%" for k, v in sorted(cov.items()))
            speed[(c, mode)] = (real_ms, sim_ms)
            print(f"| {c} | {mode} | {real_ms:.2f} ({min(ms):.2f}–{max(ms):.2f}, {len(ms)}) | {sim_ms:.2f} | "
                  f"{100 * (sim_ms / real_ms - 1):+.1f}% | {real_mem:.0f} | {sim_mem:.0f} | "
                  f"{100 * (sim_mem / real_mem - 1):+.1f}% | {srcs} |")
    print()
    print("| config | real speed-up eager/compiled | sim speed-up | difference (points) |")
    print("|---|---|---|---|")
    for c in CONFIGS:
        if (c, "eager") in speed and (c, "compiled") in speed:
            r = speed[(c, "eager")][0] / speed[(c, "compiled")][0]
            s_ = speed[(c, "eager")][1] / speed[(c, "compiled")][1]
            print(f"| {c} | {r:.3f} | {s_:.3f} | {100 * (s_ - r):+.1f} |")


if __name__ == "__main__":
    main()
