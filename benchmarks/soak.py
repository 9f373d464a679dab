"""Soak test of the process lifecycle and the results directory (issue 15; not in CI).

Part 1: ``--runs`` back-to-back small 2-rank ``phantora run``s into ONE results directory, each
with a random fate: finish, a rank that exits 7, a rank that raises, a rank that spins past
``--timeout``, or SIGTERM / SIGINT / SIGKILL of the parent at a random moment (during start-up,
the simulation, or after it). After each run:

* no process of the run is left 5 s after the parent exited: every process whose environment
  carries this soak's token (ranks, and anything they started) is found by scanning ``/proc``;
* the exit code is the one the fate implies (0, 7, 1, 143, 130, -9 ...), and no traceback but the
  raising rank's reaches stderr (an "Exception ignored" would mean a swallowed signal);
* ``summary.json`` is never stale: it is this run's (its ``argv`` carries the run's id) with a
  status that matches the exit code (``complete`` only for a finished run, whose tables are all
  there), or, for a run killed before it claimed the directory, the previous file byte for byte.

Part 2: ``--sweeps`` times, a 12-point ``netbench`` sweep (``-j 2``) is started, killed with a
random signal at a random moment, and resumed, until it finishes; then the table must hold every
point exactly once, all ``ok``, with the same numbers as an uninterrupted reference sweep, and
no process may be left after any kill. ``--run-sweeps`` does the same with a 4-point sweep of
2-rank ``phantora run``s.

    python benchmarks/soak.py --runs 200 --sweeps 10 --run-sweeps 2 --report soak.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RANKS = textwrap.dedent("""
    import os, sys
    import torch, torch.distributed as dist
    dist.init_process_group("nccl")
    r = dist.get_rank()
    fate = os.environ.get("SOAK_FATE", "ok")
    model = torch.nn.Linear(256, 256).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 3
    for step in range(steps):
        model(torch.randn(32, 256, device="cuda")).sum().backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step == 1 and r == 1:
            if fate == "exit7":
                sys.exit(7)
            if fate == "raise":
                raise ValueError("soak: rank 1 raised")
            if fate == "spin":
                while True:
                    pass
    torch.cuda.synchronize()
""")

FATES = {  # fate: (weight, what the parent gets)
    "ok": 3, "exit7": 1, "raise": 1, "spin": 1, "sigterm": 2, "sigint": 2, "sigkill": 2,
}
EXPECTED_RC = {  # fate -> acceptable exit codes
    "ok": {0}, "exit7": {7}, "raise": {1}, "spin": {1},
    "sigterm": {143, 0, -15}, "sigint": {130, 0, -2}, "sigkill": {-9, 0},
}
STATUS_FOR_RC = {0: {"complete"}, 7: {"failed"}, 1: {"failed", "timeout"}, 143: {"interrupted"},
                 130: {"interrupted"}, -9: {"running", "complete"},
                 # killed by the default action: after the run restored its handlers, i.e. once it had finished
                 -15: {"complete"}, -2: {"complete"}}


def token_processes(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``SOAK_TOKEN=token`` (zombies have none)."""
    needle = f"SOAK_TOKEN={token}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    out.append(int(entry))
        except OSError:
            continue
    return out


def leaked(token: str, wait_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while (pids := token_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:  # report, then clean up so one leak does not cascade
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def start(cmd: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


# ----------------------------------------------------------------------------- part 1: runs


def soak_runs(n: int, work: Path, rng: random.Random, token: str) -> dict:
    script = work / "ranks.py"
    script.write_text(RANKS)
    out = work / "run-out"
    fates = [f for f, w in FATES.items() for _ in range(w)]
    counts: collections.Counter = collections.Counter()
    violations: list[str] = []
    leaks: list[str] = []
    t_all = time.monotonic()
    log = open(work / "runs.log", "w")  # noqa: SIM115
    for i in range(n):
        fate = rng.choice(fates)
        before = (out / "summary.json").read_bytes() if (out / "summary.json").exists() else None
        env = {**os.environ, "SOAK_TOKEN": token, "SOAK_FATE": fate}
        cmd = [sys.executable, "-m", "phantora", "run", "--scenario", "scenarios/h200x2.yaml", "--out", str(out),
               *(["--timeout", "3"] if fate == "spin" else []), str(script), "--run-id", str(i)]
        log.write(f"--- run {i}: {fate}\n")
        log.flush()
        log_at = log.tell()
        t0 = time.monotonic()
        proc = start(cmd, env, log)
        sig = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sigkill": signal.SIGKILL}.get(fate)
        if sig is not None:
            delay = rng.uniform(0.1, 5.5)  # start-up takes ~3 s, the whole run ~5 s
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            violations.append(f"run {i} ({fate}): parent did not exit within 120 s")
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        left = leaked(token)
        if left:
            leaks.append(f"run {i} ({fate}, rc {rc}): {len(left)} process(es) left: {left}")
        # the results directory
        try:
            summary = json.loads((out / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
        mine = summary is not None and summary.get("argv") == ["--run-id", str(i)]
        status = summary.get("status") if mine else "untouched"
        if rc not in EXPECTED_RC[fate]:
            violations.append(f"run {i} ({fate}): exit code {rc}, expected one of {sorted(EXPECTED_RC[fate])}")
        if mine:
            if status not in STATUS_FOR_RC.get(rc, set()):
                violations.append(f"run {i} ({fate}): exit code {rc} but summary status {status!r}")
            if status == "complete":
                missing = [f for f in ("ops.parquet", "trace.json", "collectives.parquet", "breakdown.parquet")
                           if not (out / f).is_file()]
                if missing or summary.get("exit_code") != 0 or summary.get("iterations") != 3:
                    violations.append(f"run {i}: complete summary, but missing {missing} or wrong content")
            elif status != "running" and summary.get("exit_code") != rc:
                violations.append(f"run {i}: summary exit_code {summary.get('exit_code')} != {rc}")
        else:
            now = (out / "summary.json").read_bytes() if (out / "summary.json").exists() else None
            if now != before or rc not in (-15, -2, -9, 143, 130):
                violations.append(f"run {i} ({fate}, rc {rc}): summary.json is not this run's and was changed "
                                  "or the run did not die early (a stale summary)")
        log.flush()
        with open(work / "runs.log") as f:
            f.seek(log_at)
            said = f.read()
        if ("Traceback" in said and fate != "raise") or "Exception ignored" in said:
            violations.append(f"run {i} ({fate}, rc {rc}): a traceback on stderr (see runs.log)")
        counts[(fate, rc, status)] += 1
        print(f"run {i:3d} {fate:8s} rc={rc:4d} {status:12s} {time.monotonic() - t0:5.1f} s"
              + (f"  LEAK {left}" if left else ""), flush=True)
    log.close()
    return {"runs": n, "wall_s": round(time.monotonic() - t_all, 1), "leaks": leaks, "violations": violations,
            "outcomes": {f"{f} rc={rc} {st}": c for (f, rc, st), c in sorted(counts.items())}}


# ----------------------------------------------------------------------------- part 2: sweeps

NETBENCH_STUDY = """\
study:
  name: soak-netbench
  command: netbench
  args: [--op, all_reduce, --min-bytes, 1M, --max-bytes, 64M]
base: base.yaml
sweep:
  grid:
    network.transport.name: [single_path, uccl_multipath, ideal]
    network.fabric.oversubscription: [1, 2]
    hosts: [2, 4]
"""
RUN_STUDY = """\
study:
  name: soak-run
  command: run
  script: ranks.py
  script_args: [--steps, "3"]
  timeout_s: 120
base: base.yaml
sweep:
  grid:
    network.transport.name: [single_path, uccl_multipath]
    network.fabric.oversubscription: [1, 2]
"""
BASE = "name: soak\ngpu: h100\nhosts: 2\ngpus_per_host: 1\ncompute: {model: roofline}\n" \
       "network:\n  fabric: {hosts_per_leaf: 1, spines: 2}\n"


def sweep_table(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "sweep.parquet")


def soak_sweep(study: Path, n_points: int, cycles: int, work: Path, rng: random.Random, token: str,
               key: list[str], metric: str) -> dict:
    env = {**os.environ, "SOAK_TOKEN": token}
    ref = work / f"{study.stem}-ref"
    cmd = [sys.executable, "-m", "phantora", "sweep", str(study), "-j", "2", "--json"]
    with open(work / f"{study.stem}.log", "w") as log:
        t0 = time.monotonic()
        rc = start([*cmd, "--out", str(ref)], env, log).wait(timeout=900)
        ref_s = time.monotonic() - t0
        assert rc == 0, f"the reference sweep failed (rc {rc}); see {log.name}"
        reference = sweep_table(ref).set_index(key)[metric].sort_index()
        kills: collections.Counter = collections.Counter()
        violations: list[str] = []
        leaks: list[str] = []
        attempts = []
        for c in range(cycles):
            out = work / f"{study.stem}-{c}"
            n_kills = 0
            while True:
                proc = start([*cmd, "--out", str(out)], env, log)
                kill = n_kills == 0 or (n_kills < 4 and rng.random() < 0.6)  # every cycle is killed
                if kill:
                    try:
                        proc.wait(timeout=rng.uniform(0.3, 0.8 * ref_s))  # mostly mid-sweep
                        kill = False  # it finished before the kill
                        kills["none (finished first)"] += 1
                    except subprocess.TimeoutExpired:
                        sig = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
                        proc.send_signal(sig)
                        kills[signal.Signals(sig).name] += 1
                        n_kills += 1
                try:
                    rc = proc.wait(timeout=900)
                except subprocess.TimeoutExpired:
                    violations.append(f"{out.name}: sweep did not exit")
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                left = leaked(token)
                if left:
                    leaks.append(f"{out.name} after rc {rc}: {left}")
                if rc == 0:
                    break
                if not kill:
                    violations.append(f"{out.name}: sweep exited {rc} without being killed")
                    break
            attempts.append(n_kills + 1)
            df = sweep_table(out)
            ids = df["point_id"].unique()
            results = list(out.glob("points/*/result.json"))
            if len(ids) != n_points or len(results) != n_points:
                violations.append(f"{out.name}: {len(ids)} points in the table, {len(results)} results, "
                                  f"expected {n_points} (lost points)")
            if df.duplicated(key).any():
                violations.append(f"{out.name}: duplicated rows {df[df.duplicated(key)][key].values.tolist()}")
            if not (df["status"] == "ok").all():
                violations.append(f"{out.name}: failed points {df[df['status'] != 'ok']['point_id'].tolist()}")
            got = df.set_index(key)[metric].sort_index()
            if not got.equals(reference):
                violations.append(f"{out.name}: the table differs from the uninterrupted reference")
            print(f"{out.name}: {n_kills} kill(s), {len(ids)} points, {len(df)} rows", flush=True)
    return {"study": study.name, "points": n_points, "cycles": cycles, "reference_wall_s": round(ref_s, 1),
            "kills": dict(kills), "attempts_per_cycle": attempts, "leaks": leaks, "violations": violations}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--sweeps", type=int, default=10, help="kill/resume cycles of the netbench sweep")
    ap.add_argument("--run-sweeps", type=int, default=2, help="kill/resume cycles of the phantora-run sweep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--report", type=Path, default=None, help="write the outcome as JSON here")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    token = uuid.uuid4().hex
    # a background job of a shell script inherits SIGINT as ignored, and so would every run we start
    # (phantora respects an inherited SIG_IGN): give the children the default disposition
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = a.work or Path(tempfile.mkdtemp(prefix="phantora-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"soak: work folder {work}, token {token}", flush=True)
    t0 = time.monotonic()
    report: dict = {"seed": a.seed, "command": " ".join(sys.argv)}
    if a.runs:
        report["runs"] = soak_runs(a.runs, work, rng, token)
    (work / "base.yaml").write_text(BASE)
    (work / "ranks.py").write_text(RANKS)
    if a.sweeps:
        (work / "netbench-study.yaml").write_text(NETBENCH_STUDY)
        report["netbench_sweep"] = soak_sweep(work / "netbench-study.yaml", 12, a.sweeps, work, rng, token,
                                              key=["point_id", "size_bytes"], metric="time_us")
    if a.run_sweeps:
        (work / "run-study.yaml").write_text(RUN_STUDY)
        report["run_sweep"] = soak_sweep(work / "run-study.yaml", 4, a.run_sweeps, work, rng, token,
                                         key=["point_id"], metric="iteration_ms")
    report["wall_s"] = round(time.monotonic() - t0, 1)
    bad = sum(len(p.get("leaks", [])) + len(p.get("violations", [])) for p in report.values() if isinstance(p, dict))
    report["ok"] = bad == 0
    text = json.dumps(report, indent=2)
    print(text)
    if a.report:
        a.report.write_text(text + "\n")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
