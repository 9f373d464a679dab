"""Real H200 vs simulated for host-bound and GPU-bound programs: the host-time model (issue 19).

Real runs: ``bash benchmarks/real/host_time_real.sh h200 560`` (device tool), rows in
``docs/data/host_time/real_h200_call3.jsonl`` and, from an earlier call of the same day (another
lease), ``real_h200_call2.jsonl``. The reference figure of a config is the median over every real
process of it in both calls; their range is the real run-to-run spread. The call recorded kernel and host-cost profiles of the *fit* configs only
(``profiles/data/h200/host_time.jsonl``); the held-out configs were never recorded.

Simulated here with ``phantora run --scenario scenarios/h200x1.yaml --host-time measured`` (and
``zero`` for comparison)::

    python benchmarks/host_time_validation.py [--json] [--only NAME ...] [--script-fit K]

``--script-fit`` overrides :data:`interpose.host_model.SCRIPT_TIME_FIT` (fitting it is what the
option is for: fit on the fit set, then report the held-out rows at the fitted value).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "docs" / "data" / "host_time"
GEN, MOE, GPT, FP16 = ("examples/generate/generate.py", "examples/moe/train.py", "examples/gpt/train.py",
                       "examples/zoo/gpt_fp16.py")
A = "--hidden 512 --layers 4 --experts 8 --top-k 2 --batch-size 8 --seq-len 512"
CONFIGS = [  # label, set, script, args (simulated with fewer steps than the real run; the mean skips the first)
    ("gen_b1", "fit", GEN, "--batch-size 1"),
    ("gen_b8", "held-out", GEN, "--batch-size 8"),
    ("moe_gmm_A", "fit", MOE, f"--experts-impl grouped_mm {A} --steps 5"),
    ("moe_eager_A", "held-out", MOE, f"--experts-impl eager {A} --steps 5"),
    ("gpt_T1", "fit", GPT, "--n-layer 4 --n-head 4 --n-embd 256 --seq-len 256 --batch-size 1 --steps 8"),
    ("gpt_T2", "fit", GPT, "--n-layer 8 --n-head 8 --n-embd 512 --seq-len 128 --batch-size 2 --steps 8"),
    ("gpt_T3", "held-out", GPT, "--n-layer 6 --n-head 6 --n-embd 384 --seq-len 512 --batch-size 4 --steps 8"),
    ("fp16_F1", "fit", FP16, "--n-layer 4 --n-embd 256 --batch-size 2 --seq-len 256 --steps 8"),
    ("fp16_F2", "held-out", FP16, "--n-layer 12 --n-embd 768 --batch-size 8 --seq-len 1024 --steps 5"),
    ("gpt_default", "fit", GPT, "--steps 6"),
]


def _real_ms(row: dict) -> float | None:
    if "ms_per_token" in row:
        return float(row["ms_per_token"])
    steps = row.get("step_ms")
    if not steps:
        return None
    return statistics.median(steps[2:] if len(steps) > 4 else steps[1:])


def real_rows() -> dict[str, dict]:
    """Per label, every real figure of it (both calls, every process): the reference is their median,
    the spread their range (the device host's own speed varies between processes and leases)."""
    out: dict[str, dict] = {}
    for call in ("call3", "call2"):
        for line in (DATA / f"real_h200_{call}.jsonl").read_text().splitlines():
            r = json.loads(line)
            label, ms = r.get("label"), _real_ms(r)
            if not label or ms is None:
                continue
            d = out.setdefault(label.removesuffix("_2nd"), {"runs": []})
            d["runs"].append(round(ms, 3))
            mem = r.get("max_memory_allocated") or (r.get("max_memory_allocated_mib", 0) * 2**20)
            d["real_mem_mib"] = round(mem / 2**20, 1)
    for d in out.values():
        d["real_ms"] = round(statistics.median(d["runs"]), 3)
    return out


def simulate(script: str, args: str, host_time: str, script_fit: float | None,
             scenario: str = "scenarios/h200x1.yaml") -> tuple[float, dict]:
    env = dict(os.environ)
    if script_fit is not None:
        env["PHANTORA_SCRIPT_TIME_FIT"] = str(script_fit)
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([sys.executable, "-m", "phantora", "run", "--scenario", scenario,
                            "--host-time", host_time, "--out", d, "--overwrite", script, *args.split()],
                           cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
        if p.returncode:
            raise RuntimeError(f"{script} {args} failed: {p.stderr[-1500:]}")
        summary = json.loads((Path(d) / "summary.json").read_text())
    m = re.search(r'"ms_per_token": ([\d.]+)', p.stdout)
    ms = float(m.group(1)) if m else summary["mean_ms_per_iter_excluding_first"]
    return ms, summary


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--only", multiple=True, help="labels to run (default: all)")
@click.option("--script-fit", type=float, default=None, help="override SCRIPT_TIME_FIT")
@click.option("--zero/--no-zero", default=True, show_default=True, help="also simulate with --host-time zero")
@click.option("--scenario", default="scenarios/h200x1.yaml", show_default=True)
@click.option("--host-time", "host_time", type=click.Choice(["measured", "zero"]), default="measured", show_default=True)
def main(as_json: bool, only: tuple[str, ...], script_fit: float | None, zero: bool, scenario: str,
         host_time: str) -> None:
    real = real_rows()
    for label, part, script, args in CONFIGS:
        if only and label not in only:
            continue
        r = real[label]
        ms, summary = simulate(script, args, host_time, script_fit, scenario)
        row = {"label": label, "set": part, "real_ms": r["real_ms"], "real_runs_ms": r["runs"],
               "sim_ms": round(ms, 3), "err_pct": round(100 * (ms / r["real_ms"] - 1), 1),
               "real_mem_mib": r.get("real_mem_mib"),
               "sim_mem_mib": round(summary["peak_allocated_bytes"] / 2**20, 1),
               "host_model": summary.get("host_model"), "exact_coverage_pct": summary.get("exact_coverage_pct")}
        if zero:
            zms, _ = simulate(script, args, "zero", None, scenario)
            row.update(zero_ms=round(zms, 3), zero_err_pct=round(100 * (zms / r["real_ms"] - 1), 1))
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            spread = f"{min(r['runs'])}-{max(r['runs'])}"
            print(f"{label:12s} {part:8s} real {r['real_ms']:8.2f} (all runs {spread:>15s}) sim {ms:8.2f} "
                  f"{row['err_pct']:+6.1f}%" + (f"  zero {row['zero_ms']:8.2f} {row['zero_err_pct']:+6.1f}%" if zero else ""),
                  flush=True)


if __name__ == "__main__":
    main()
