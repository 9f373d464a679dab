"""Record kernel sweep specs on the GPU within a deadline, writing as it goes (issue 17).

``phantora profile --kernels-only`` writes its file once at the end and keeps
the TF32 switch as the process has it; a sweep of ~20k specs inside one
device call needs both otherwise:

* output is rewritten every ``--flush-every`` specs and at the deadline, so a
  call cut short keeps what it measured;
* fp32 specs whose key ends in ``tf32=True`` are timed with
  ``torch.backends.cuda.matmul.allow_tf32`` on, the rest with it off;
* the key being timed is written to ``<out>/inflight`` first: if a kernel kills
  the process, a rerun (same arguments) records that key as a failure and goes on.

    python3 benchmarks/real/kernel_sweep_record.py --out OUT --deadline-s 400 SPECS.jsonl ...

Each ``X.jsonl`` spec file gives ``OUT/sweep_X.jsonl.gz`` (a profile file) and
failures in ``OUT/failures.json``. Timing is :func:`profiles.recorder.profile_specs`
(median of ``--repeats`` CUDA-event timings after ``--warmup`` calls).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from profiles.recorder import environment_header, profile_specs
from profiles.store import ProfileEntry, read_profile, write_profile


def _out_path(out: Path, spec_file: Path) -> Path:
    return out / f"sweep_{spec_file.name.removesuffix('.jsonl')}.jsonl.gz"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--deadline-s", type=float, default=400.0, help="stop starting new specs after this many seconds"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--flush-every", type=int, default=1500)
    ap.add_argument("--gpu", default="h200")
    a = ap.parse_args()
    t_end = time.monotonic() + a.deadline_s
    a.out.mkdir(parents=True, exist_ok=True)
    fail_path, inflight = a.out / "failures.json", a.out / "inflight"
    failures: dict[str, str] = json.loads(fail_path.read_text()) if fail_path.exists() else {}
    if inflight.exists() and (k := inflight.read_text().strip()):
        failures[k] = "process died while timing it"
    header = environment_header(a.gpu, "")
    header.extra.update({"launch_method": "steady", "repeats": a.repeats, "warmup": a.warmup})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    stopped = False
    for sf in a.specs:
        path = _out_path(a.out, sf)
        entries: dict[str, ProfileEntry] = read_profile(path)[1] if path.exists() else {}
        header.source = f"kernels-only {sf.name} (benchmarks/real/kernel_sweep_record.py)"
        specs = [json.loads(line) for line in sf.read_text().splitlines() if line.strip()]
        todo = [s for s in specs if s["key"] not in entries and s["key"] not in failures]
        t0, n_new = time.monotonic(), 0
        for spec in todo:
            if time.monotonic() > t_end:
                stopped = True
                break
            inflight.write_text(spec["key"])
            torch.backends.cuda.matmul.allow_tf32 = spec["key"].endswith("tf32=True")
            got, failed = profile_specs([spec], device=device, repeats=a.repeats, warmup=a.warmup)
            failures.update(failed)
            for e in got:
                entries[e.key] = e
            n_new += 1
            if n_new % a.flush_every == 0:
                write_profile(path, header, entries.values())
                fail_path.write_text(json.dumps(failures, indent=0, sort_keys=True))
        write_profile(path, header, entries.values())
        fail_path.write_text(json.dumps(failures, indent=0, sort_keys=True))
        inflight.write_text("")
        print(
            f"{sf.name}: {len(entries)}/{len(specs)} recorded, {n_new} now in {time.monotonic() - t0:.1f} s",
            flush=True,
        )
        if stopped:
            print("deadline reached", flush=True)
            break
    print(f"failures: {len(failures)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
