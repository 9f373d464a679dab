"""Accuracy of the shipped profiles against real runs: the table in docs/validation.md (issue 5).

For each single-GPU config measured by benchmarks/real/profile_device.sh it
replays the op trace recorded on the GPU (``profiles.timeline``) two ways:

* ``exact``: with that run's own measurements (tests the replay rule itself);
* ``shipped``: with the shipped profiles only (profiles/data/<gpu>/), unseen
  signatures answered by the replay model's fitted fallback — the held-out
  configs were never added to the shipped profiles, so this is the number a
  simulated run of a new model gets.

and compares with the measured ``mean ms/iter`` of the plain run.

    python benchmarks/real/profile_accuracy.py docs/data/profiles/h200 h200 [--json]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import shlex
from pathlib import Path

from profiles import get_gpu
from profiles.replay import DATA_DIR, FitTable, op_launch_us
from profiles.store import ProfileEntry, load_profiles, read_profile
from profiles.timeline import replay_trace

_REAL = re.compile(r"^\[real ddp ?(.*?)\] mean ms/iter \(excluding first\): ([0-9.]+)")


def _norm(args: str) -> str:
    words = shlex.split(args)
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w == "--steps":
            skip = True
            continue
        out.append(w)
    return " ".join(out)


def _keys(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [k for k in f.read().split("\n") if k]


def _with_launch(entries: dict[str, ProfileEntry]) -> dict[str, ProfileEntry]:
    """The replay model's launch policy (per-op median) applied to a set of entries."""
    launch = op_launch_us(entries)
    out = {}
    for k, e in entries.items():
        out[k] = copy.copy(e)
        out[k].launch_us = launch.get(e.op, e.launch_us)
    return out


def accuracy_rows(data: Path, gpu_key: str, shipped: Path | None = None) -> list[dict]:
    gpu = get_gpu(gpu_key)
    ship, _ = load_profiles([shipped or DATA_DIR / gpu_key], gpu=gpu_key)
    _, held = read_profile(data / "heldout.jsonl")
    table = FitTable(gpu, ship)
    real = {}
    for line in (data / "device_log.txt").read_text().splitlines():
        m = _REAL.match(line)
        if m:
            real[_norm(m.group(1))] = float(m.group(2))
    cases = []
    for runs, tdir, kind in (("ship_runs.txt", "trace_ship", "shipped"), ("heldout_runs.txt", "trace_heldout", "held out")):
        for i, line in enumerate((data / runs).read_text().splitlines()):
            world, script, *args = shlex.split(line)
            if world != "1" or not script.endswith("ddp/train.py"):
                continue
            cases.append((_norm(" ".join(args)), data / tdir / f"run{i:02d}.gz", kind))
    rows = []
    for args, trace, kind in cases:
        if args not in real or not trace.exists():
            continue
        keys = _keys(trace)
        own = _with_launch({**ship, **held})
        exact = replay_trace(keys, own, host_gap=False)
        mixed: dict[str, ProfileEntry] = {}
        for k in set(keys):
            if k in ship:
                mixed[k] = ship[k]
            else:
                e = copy.copy(held[k])
                e.dur_us = table.predict_entry(e) or e.dur_us
                mixed[k] = e
        launch = op_launch_us(ship)
        for k, e in mixed.items():
            mixed[k] = copy.copy(e)
            mixed[k].launch_us = launch.get(e.op, e.launch_us)
        sim = replay_trace(keys, mixed, host_gap=False)
        hit = sum(mixed[k].dur_us for k in keys if k in ship)
        tot = sum(mixed[k].dur_us for k in keys)
        r = real[args]
        rows.append({
            "gpu": gpu_key, "config": args or "(defaults)", "profile": kind, "real_ms": r,
            "exact_ms": round(exact.iter_us / 1e3, 2), "exact_err_pct": round(100 * (exact.iter_us / 1e3 - r) / r, 1),
            "shipped_ms": round(sim.iter_us / 1e3, 2), "shipped_err_pct": round(100 * (sim.iter_us / 1e3 - r) / r, 1),
            "coverage_pct": round(100 * hit / tot, 1),
        })  # fmt: skip
    return rows


def simulate(gpu_key: str, args: str, steps: int = 6) -> tuple[float, float]:
    """(mean ms/iter, profile share of GPU time %) of gpt_single.py under the shim with the replay model.

    Host time ``zero``: the profile's ``launch_us`` already carries the real
    eager per-op host cost, so the simulating machine's own Python time is left out.
    """
    import contextlib
    import io

    from interpose import RankConfig, run_script
    from profiles import build_compute_model

    gpu = get_gpu(gpu_key)
    model = build_compute_model("replay", gpu)
    cfg = RankConfig(gpu=gpu, compute_model=model, host_time="zero")
    script = str(Path(__file__).resolve().parent / "gpt_single.py")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = run_script(script, [*shlex.split(args), "--steps", str(steps)], cfg)
    m = re.search(r"mean ms/iter \(excluding first\): ([0-9.]+)", out.getvalue())
    if res.exit_code or not m:
        raise RuntimeError(f"simulation of {args!r} failed: {res.error}")
    by: dict[str, float] = {}
    for op in res.ops:
        by[op.source] = by.get(op.source, 0.0) + op.dur_us
    timed = sum(v for k, v in by.items() if k in ("profile", "fitted", "roofline"))
    return float(m.group(1)), 100.0 * by.get("profile", 0.0) / max(timed, 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("gpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sim", action="store_true", help="also simulate each config with interpose (gpt_single.py)")
    a = p.parse_args()
    rows = accuracy_rows(a.data, a.gpu)
    if a.sim:
        for r in rows:
            args = "" if r["config"] == "(defaults)" else r["config"]
            ms, cov = simulate(a.gpu, args)
            r["sim_ms"], r["sim_err_pct"], r["sim_coverage_pct"] = ms, round(100 * (ms - r["real_ms"]) / r["real_ms"], 1), round(cov, 1)
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    cols = list(rows[0]) if rows else []
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
