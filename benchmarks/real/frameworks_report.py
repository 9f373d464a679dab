"""The simulated side of benchmarks/real/frameworks_device.sh: each config of frameworks_configs.tsv
under ``phantora run`` (same harness, same arguments), beside the real runs' figures.

    python benchmarks/real/frameworks_report.py docs/data/frameworks/real.jsonl --host-time zero \\
        --out docs/data/frameworks/sim_zero.jsonl

Prints a markdown table: real ms/iter (mean of the runs' means, and their spread), simulated ms/iter,
the error, peak ``max_memory_allocated`` both sides, and the simulated GPU time by source.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "benchmarks/real/frameworks_timing.py"


def configs(path: Path = ROOT / "benchmarks/real/frameworks_configs.tsv") -> list[tuple[str, str, list[str]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, how, cmd = line.split("\t")
            args = cmd.split()
            if (ROOT / args[0]).exists():  # a script path, run from elsewhere (TorchTitan's assets folder)
                args[0] = str(ROOT / args[0])
            rows.append((name, how, args))
    return rows


def simulate(name: str, args: list[str], scenario: str, host_time: str, work: Path) -> dict:
    """One ``phantora run`` of the harness; its JSON line plus the summary's coverage."""
    out = work / name
    sys.path.insert(0, str(HARNESS.parent))
    from frameworks_assets import write_assets

    write_assets(work)  # TorchTitan's ./tests/assets (run from ``work``)
    cmd = [sys.executable, "-m", "phantora", "run", "--scenario", str(ROOT / scenario), "--host-time", host_time,
           "--out", str(out), "--overwrite", str(HARNESS), "--name", name, *args]
    env = {"CUDA_VISIBLE_DEVICES": "0", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env={**os.environ, **env})
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith('{"harness')]
    if not lines or json.loads(lines[-1])["mean_ms"] is None:
        return {"harness": name, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    row = json.loads(lines[-1])
    s = json.loads((out / "summary.json").read_text())
    row |= {"coverage": {k: v["dur_pct"] for k, v in s.get("coverage", {}).items()},
            "gpu_busy_pct": s.get("gpu_busy_pct"), "host_time": host_time,
            "phantora_ms": s.get("mean_ms_per_iter_excluding_first")}
    return row


def with_profiles(scenario: str, extra: Path, tmp: Path) -> str:
    """A copy of ``scenario`` whose replay loads the shipped (non-sweep) profiles, then ``extra``'s."""
    import yaml

    from phantora.scenario import load_scenario
    from profiles.families import is_sweep_file
    from profiles.replay import DATA_DIR
    from profiles.store import profile_files

    sc = load_scenario(ROOT / scenario)
    shipped = [str(p) for p in profile_files([DATA_DIR / sc.gpu]) if not is_sweep_file(p)]
    doc = yaml.safe_load((ROOT / scenario).read_text())
    opts = doc.setdefault("compute", {}).setdefault("options", {})
    opts["profiles"] = shipped + [str(p.resolve()) for p in profile_files([extra])]
    out = tmp / f"{sc.name}_extra_profiles.yaml"
    out.write_text(yaml.safe_dump(doc))
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("--scenario", default="scenarios/h200x1.yaml")
    ap.add_argument("--host-time", default="zero", choices=["zero", "measured"])
    ap.add_argument("--out", type=Path, help="write the simulated rows here (JSON lines)")
    ap.add_argument("--only", nargs="*", help="config names")
    ap.add_argument("--configs", type=Path, default=ROOT / "benchmarks/real/frameworks_configs.tsv",
                    help="the config list the device call ran (frameworks_device.sh's CONFIGS)")
    ap.add_argument("--extra-profiles", type=Path, help="a folder of profiles recorded from these configs "
                    "(frameworks_device.sh's profiles/), replayed after the shipped ones (later wins per key)")
    a = ap.parse_args()
    real: dict[str, list[dict]] = {}
    for ln in a.real.read_text().splitlines():
        r = json.loads(ln)
        if r.get("mean_ms") is not None:
            real.setdefault(r["harness"], []).append(r)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scenario = a.scenario if a.extra_profiles is None else with_profiles(a.scenario, a.extra_profiles, Path(tmp))
        for name, _how, args in configs(a.configs):
            if a.only and name not in a.only:
                continue
            rows.append(simulate(name, args, scenario, a.host_time, Path(tmp)))
    if a.out:
        a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("| config | real ms/iter (runs) | sim ms/iter | error | real peak MiB | sim peak MiB | sim GPU time by source |")
    print("|---|---|---|---|---|---|---|")
    for s in rows:
        rs = real.get(s["harness"], [])
        means = [r["mean_ms"] for r in rs]
        rm = statistics.mean(means) if means else None
        runs = ", ".join(f"{m:.1f}" for m in means) or "not run"
        if "error" in s:
            print(f"| {s['harness']} | {runs} | failed: {s['error'][:80]} | | | | |")
            continue
        err = f"{(s['mean_ms'] / rm - 1) * 100:+.1f}%" if rm else "–"
        rmem = f"{rs[0]['max_memory_allocated'] / 2**20:.1f}" if rs else "–"
        src = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(s["coverage"].items(), key=lambda kv: -kv[1]))
        print(f"| {s['harness']} | {rm:.2f} ({runs}) | {s['mean_ms']:.2f} | {err} | {rmem} | "
              f"{s['max_memory_allocated'] / 2**20:.1f} | {src} |" if rm else
              f"| {s['harness']} | {runs} | {s['mean_ms']:.2f} | – | – | {s['max_memory_allocated'] / 2**20:.1f} | {src} |")


if __name__ == "__main__":
    main()
