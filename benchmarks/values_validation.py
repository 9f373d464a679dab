"""Real H200 vs simulated for the data-dependent control-flow programs (MoE training, HF generate).

Reads the real runs recorded by ``benchmarks/real/moe_generate_real.sh`` (``docs/data/values/real_h200.jsonl``),
simulates each config with ``phantora run --scenario scenarios/h200x1.yaml`` on this machine, and prints one
row per config (``--json``: JSON lines). Real ms/iter is the median of steps 3.. of a run (the spread is the
min-max of those steps, and of a second process where one was recorded). The profile
``profiles/data/h200/moe_generate.jsonl.gz`` was recorded on the *fit* configs only and
``moe_large.jsonl.gz`` on the *fit* configs only (``FIT``: MoE sizes A and C, generate batch 1); the others are
held out.

    python benchmarks/values_validation.py [--json] [--only moe|generate] [--impl eager|grouped_mm]

Simulate with the GPU's framework versions (transformers 5.17.0 for the shipped real runs: its grouped_mm
experts mask the sorted tokens on every call, 5.24's only under expert parallelism)::

    pip install --no-deps --target /tmp/tf517 transformers==5.17.0
    PYTHONPATH=/tmp/tf517 python benchmarks/values_validation.py --json --only moe
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
REAL = sorted((REPO / "docs" / "data" / "values").glob("real_h200*.jsonl"))
FIT = [  # configs whose kernels were recorded (profiles/data/h200/moe_generate.jsonl.gz, moe_large.jsonl.gz)
    {"program": "moe", "hidden": 512, "layers": 4, "experts": 8, "seq_len": 512},
    {"program": "moe", "hidden": 2048, "layers": 2, "experts": 8, "seq_len": 2048},
    {"program": "generate", "batch_size": 1},
]


def _is_fit(row: dict) -> bool:
    have = {"program": row["program"], **row["args"]}
    return any(all(have.get(k) == v for k, v in f.items()) for f in FIT)


def _args(row: dict) -> list[str]:
    out = []
    for k, v in row["args"].items():
        if k == "steps":
            v = 4
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def _simulate(row: dict, values: str) -> tuple[dict, dict]:
    script = "examples/moe/train.py" if row["program"] == "moe" else "examples/generate/generate.py"
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(["phantora", "run", "--scenario", "scenarios/h200x1.yaml", "--values", values, "--out", d,
                            script, *_args(row)],
                           cwd=REPO, capture_output=True, text=True, timeout=1800)
        line = next((x for x in p.stdout.splitlines() if x.startswith('{"program"')), None)
        if p.returncode or line is None:
            raise RuntimeError(f"{script} {_args(row)} failed: {p.stderr[-2000:]}")
        return json.loads(line), json.loads((Path(d) / "summary.json").read_text())


def _key(row: dict) -> tuple:
    return (row["program"], row.get("impl"), tuple(sorted(row["args"].items())))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--only", type=click.Choice(["moe", "generate"]))
@click.option("--impl", type=click.Choice(["eager", "grouped_mm"]), help="MoE rows of one experts implementation")
@click.option("--values", default="balanced", show_default=True, help="value policy (phantora run --values)")
def main(as_json: bool, only: str | None, impl: str | None, values: str) -> None:
    runs: dict[tuple, list[dict]] = {}
    for line in (x for f in REAL for x in f.read_text().splitlines()):
        r = json.loads(line)
        if (only is None or r["program"] == only) and (impl is None or r.get("impl") == impl):
            runs.setdefault(_key(r), []).append(r)
    for reps in runs.values():
        r0 = reps[0]
        sim, summary = _simulate(r0, values)
        row: dict = {"program": r0["program"], "impl": r0.get("impl"), "args": " ".join(_args(r0)).replace("--steps 4", "").strip()}
        if r0["program"] == "moe":
            fit = _is_fit(r0)
            steps = [s for r in reps for s in r["step_ms"][2:]]
            real_ms = statistics.median(reps[0]["step_ms"][2:])
            sim_ms = statistics.median(sim["step_ms"][1:])
            row |= {"set": "fit" if fit else "held-out", "real_ms": round(real_ms, 2),
                    "real_spread_ms": [round(min(steps), 2), round(max(steps), 2)],
                    "real_ms_2nd_process": round(statistics.median(reps[1]["step_ms"][2:]), 2) if len(reps) > 1 else None,
                    "sim_ms": round(sim_ms, 2), "ms_err_pct": round(100 * (sim_ms / real_ms - 1), 1)}
        else:
            fit = _is_fit(r0)
            real_ms = r0["ms_per_token"]
            row |= {"set": "fit" if fit else "held-out", "real_new_tokens": r0["new_tokens"],
                    "sim_new_tokens": sim["new_tokens"], "real_ms": real_ms,
                    "real_ms_2nd_process": reps[1]["ms_per_token"] if len(reps) > 1 else None,
                    "sim_ms": sim["ms_per_token"], "ms_err_pct": round(100 * (sim["ms_per_token"] / real_ms - 1), 1)}
        real_mem, sim_mem = r0["max_memory_allocated"], sim["max_memory_allocated"]
        row |= {"real_mem_mib": round(real_mem / 2**20, 1), "sim_mem_mib": round(sim_mem / 2**20, 1),
                "mem_err_pct": round(100 * (sim_mem / real_mem - 1), 2),
                "exact_profile_pct": summary.get("exact_coverage_pct")}
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return None


if __name__ == "__main__":
    sys.exit(main())
