"""The simulated side of the zoo conformance check, and its tables for docs/conformance.md.

    tar -xzf zoo.tar.gz -C DIR           # from benchmarks/real/conformance_zoo.sh (one device call)
    python benchmarks/real/conformance_zoo_report.py DIR [--scenario scenarios/h200x1.yaml] [--only NAME ...]

For every program in DIR/programs.tsv with a real trace: ``phantora run --scenario S`` into DIR/sim/NAME
(kept; ``--rerun`` to simulate again), then ``phantora conformance`` against DIR/traces/NAME.gz and
DIR/profiles/NAME.jsonl (table in DIR/conformance/NAME.txt, JSON lines in NAME.jsonl). Prints one
Markdown table: matched / different / missing / extra shares of real GPU time, the largest divergence,
and ms/iter and peak memory real (DIR/real.jsonl, mean of the steps after the first, their min–max in
brackets) vs simulated. The simulations run on this interpreter (``sys.executable``) with its PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from phantora import conformance as cf  # noqa: E402


def _programs(d: Path) -> list[tuple[str, list[str]]]:
    out = []
    for line in (d / "programs.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, cmd = line.split("\t", 1)
            out.append((name, cmd.split()))
    return out


def _real(d: Path) -> dict[str, dict]:
    p = d / "real.jsonl"
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.is_file() else []
    return {r["name"]: r for r in rows}


def _simulate(name: str, cmd: list[str], out: Path, scenario: str, rerun: bool) -> str | None:
    """Run the simulation unless a complete one is there; returns an error line or None."""
    summary = out / "summary.json"
    if not rerun and summary.is_file() and json.loads(summary.read_text()).get("status") == "complete":
        return None
    args = [sys.executable, "-m", "phantora", "run", "--scenario", scenario, "--out", str(out), "--overwrite", *cmd]
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        lines = [x.strip() for x in (r.stderr + r.stdout).splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x.split(":")[0]]  # the exception line of a traceback
        return (errors or lines or [f"exit {r.returncode}"])[-1][:160]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--scenario", default="scenarios/h200x1.yaml")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--steady", action="store_true", help="compare the iterations after the first only")
    a = ap.parse_args()
    d = a.dir.resolve()
    real = _real(d)
    (d / "conformance").mkdir(exist_ok=True)
    print("| program | matched % | different % | missing % | extra % | largest divergence | real ms/iter (min–max)"
          " | sim ms/iter | real MiB | sim MiB | MiB sim/real − 1 |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, cmd in _programs(d):
        if a.only and name not in a.only:
            continue
        trace, prof = d / "traces" / f"{name}.gz", d / "profiles" / f"{name}.jsonl"
        r = real.get(name, {})
        steps = r.get("step_ms") or []
        tail = steps[1:] or steps
        real_ms = f"{statistics.mean(tail):.2f} ({min(tail):.1f}–{max(tail):.1f})" if steps else "-"
        real_mib = f"{r['max_memory_allocated'] / 2**20:.0f}" if "max_memory_allocated" in r else "-"
        if not trace.is_file() or not prof.is_file():
            print(f"| {name} | no real trace | | | | | {real_ms} | | {real_mib} | | |")
            continue
        sim = d / "sim" / name
        err = _simulate(name, cmd, sim, a.scenario, a.rerun)
        if err is not None:
            print(f"| {name} | sim failed: {err.replace('|', '/')} | | | | | {real_ms} | | {real_mib} | | |")
            continue
        keys, sim_dur = cf.read_sim(sim)
        rep = cf.compare(cf.read_trace(trace), cf.read_durations(prof), keys, sim_dur, steady=a.steady)
        conf = [sys.executable, "-m", "phantora", "conformance", "--real-trace", str(trace), "--real-profile",
                str(prof), "--sim", str(sim), *(["--steady"] if a.steady else [])]
        with open(d / "conformance" / f"{name}.txt", "w") as f:
            subprocess.run(conf, cwd=REPO, stdout=f, check=False)
        (d / "conformance" / f"{name}.jsonl").write_text("\n".join(rep.to_json_lines()) + "\n")
        s = json.loads((sim / "summary.json").read_text())
        sim_ms = s.get("mean_ms_per_iter_excluding_first")
        top = rep.rows[0] if rep.rows else None
        real_b = r.get("max_memory_allocated")
        mem_err = f"{100 * (s['peak_allocated_bytes'] / real_b - 1):+.1f}%" if real_b else "-"
        what = f"{top.kind} {top.op.removeprefix('aten.')} ({100 * top.share:.2f}%)" if top else "none"
        sh = {k: f"{100 * v:.2f}" for k, v in rep.shares.items()}
        print(f"| {name} | {sh['matched']} | {sh['different']} | {sh['missing']} | {sh['extra']} | {what} | {real_ms} | "
              f"{sim_ms:.2f} | {real_mib} | {s['peak_allocated_bytes'] / 2**20:.0f} | {mem_err} |")


if __name__ == "__main__":
    main()
