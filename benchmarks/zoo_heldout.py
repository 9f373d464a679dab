"""Held-out zoo configs (issue 17): simulated ms/iter and peak memory against real runs never profiled.

Simulates every row of ``examples/zoo/heldout.tsv`` (sizes and batch sizes no profile was recorded for) on
``scenarios/h200x1.yaml`` from the shipped profiles and family models, and prints them beside the real runs
of ``PROGRAMS=examples/zoo/heldout.tsv PROFILE=0 REPS="1 2" bash benchmarks/real/conformance_zoo.sh``
(its ``real.jsonl``): real ms/iter (mean of the steps after the first, per process, and their range over
processes), simulated, error, peak memory, and where the simulated GPU time came from.

    python benchmarks/zoo_heldout.py --real docs/data/zoo_heldout/real.jsonl [--host-time zero] [--out sim.jsonl]
    (the vision rows need torchvision/timm, i.e. PyPI's CUDA build of torch: run those with .venv-cuda's python)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def configs(path: Path) -> list[tuple[str, list[str]]]:
    rows = []
    for ln in path.read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            name, cmd = ln.split("\t", 1)
            rows.append((name, cmd.split()))
    return rows


def simulate(name: str, cmd: list[str], scenario: str, host_time: str, out: Path) -> dict:
    run = [sys.executable, "-m", "phantora", "run", "--scenario", scenario, "--host-time", host_time,
           "--out", str(out / name), "--overwrite", "--json", *cmd]  # fmt: skip
    p = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    s_path = out / name / "summary.json"
    if p.returncode != 0 or not s_path.exists():
        return {"name": name, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    s = json.loads(s_path.read_text())
    return {"name": name, "host_time": host_time, "sim_ms": s["mean_ms_per_iter_excluding_first"],
            "sim_peak_bytes": s["peak_allocated_bytes"], "exact_coverage_pct": s.get("exact_coverage_pct"),
            "coverage": {k: v["dur_pct"] for k, v in s.get("coverage", {}).items()}}  # fmt: skip


def real_rows(path: Path | None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for ln in path.read_text().splitlines() if path else []:
        r = json.loads(ln)
        steps = r.get("step_ms") or []
        if len(steps) > 1:
            out.setdefault(r["name"], []).append({"ms": statistics.mean(steps[1:]), "mem": r["max_memory_allocated"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=Path, default=ROOT / "examples/zoo/heldout.tsv")
    ap.add_argument("--real", type=Path, help="real.jsonl of the device call")
    ap.add_argument("--scenario", default=str(ROOT / "scenarios/h200x1.yaml"))
    ap.add_argument("--host-time", default="zero", choices=["zero", "measured"])
    ap.add_argument("--sim", type=Path, help="simulated rows from an earlier run of this script (no re-run)")
    ap.add_argument("--out", type=Path, help="write the simulated rows here (JSON lines)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs/zoo_heldout")
    ap.add_argument("--only", nargs="*", help="config names (torchvision/timm need the CUDA build of torch)")
    a = ap.parse_args()
    if a.sim:
        sims = [json.loads(ln) for ln in a.sim.read_text().splitlines() if ln.strip()]
    else:
        sims = [simulate(n, c, a.scenario, a.host_time, a.work) for n, c in configs(a.configs)
                if not a.only or n in a.only]
    if a.out:
        a.out.write_text("".join(json.dumps(r) + "\n" for r in sims))
    real = real_rows(a.real)
    print("| config | real ms/iter (processes: range) | sim ms/iter | error | real MiB | sim MiB | MiB error "
          "| sim GPU time by source |")
    print("|---|---|---|---|---|---|---|---|")
    for s in sims:
        if "error" in s:
            print(f"| {s['name']} | | failed: {s['error'][:90]} | | | | | |")
            continue
        rs = real.get(s["name"], [])
        src = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(s["coverage"].items(), key=lambda kv: -kv[1]))
        sim_mib = s["sim_peak_bytes"] / 2**20
        if not rs:
            print(f"| {s['name']} | not run | {s['sim_ms']:.2f} | | | {sim_mib:.0f} | | {src} |")
            continue
        ms = [r["ms"] for r in rs]
        rm, mem = statistics.mean(ms), rs[0]["mem"] / 2**20
        print(f"| {s['name']} | {rm:.2f} ({min(ms):.2f}–{max(ms):.2f}, n={len(ms)}) | {s['sim_ms']:.2f} | "
              f"{(s['sim_ms'] / rm - 1) * 100:+.1f}% | {mem:.0f} | {sim_mib:.0f} | {(sim_mib / mem - 1) * 100:+.1f}% "
              f"| {src} |")


if __name__ == "__main__":
    main()
