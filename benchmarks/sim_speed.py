"""Simulation speed of multi-rank runs: wall seconds per simulated iteration, and memory per rank.

Runs the DDP example (a small GPT, so the numbers measure the simulator rather than the
model) on N simulated H100s (8 per host) and prints, per N: wall time of the whole run,
of the start-up (fork to every rank connected), wall seconds per simulated iteration, and
resident memory per rank process (RSS, and PSS, which splits pages shared after the fork), and CPU
seconds spent in the coordinator (this process) versus the rank processes.

    python benchmarks/sim_speed.py --ranks 8 32 128
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from pathlib import Path

import phantora.coordinator.core as core
from netsim.alpha_beta import AlphaBetaNetwork
from phantora.run import RunJob, execute, prewarm
from profiles import build_compute_model, get_gpu

REPO = Path(__file__).resolve().parent.parent
SCRIPT_ARGS = ["--n-layer", "2", "--n-embd", "128", "--n-head", "4", "--seq-len", "128", "--vocab-size", "1024",
               "--batch-size", "2"]


def _mem_kib(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class Probe:
    """Wall-clock marks from inside the coordinator, plus a memory sampler over the rank pids."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self._stop = threading.Event()
        orig = core.Coordinator.handle

        def handle(coord, msg):
            now = time.perf_counter()
            name = type(msg).__name__
            self.marks.setdefault(f"first_{name}", now)
            self.marks[f"last_{name}"] = now
            return orig(coord, msg)

        core.Coordinator.handle = handle  # type: ignore[method-assign]

    def on_start(self, pids: list[int]) -> None:
        def sample() -> None:
            while not self._stop.is_set():
                mem = [_mem_kib(p) for p in pids]
                self.peak_rss_kib = max(self.peak_rss_kib, sum(m[0] for m in mem))
                self.peak_pss_kib = max(self.peak_pss_kib, sum(m[1] for m in mem))
                self._stop.wait(0.5)

        threading.Thread(target=sample, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def measure(n: int, steps: int, gpus_per_host: int, symmetric: bool = False) -> dict:
    gpu = get_gpu("h100")
    probe = Probe()
    job = RunJob(script=str(REPO / "examples/ddp/train.py"), argv=[*SCRIPT_ARGS, "--steps", str(steps)],
                 nnodes=max(1, n // gpus_per_host), nproc_per_node=min(n, gpus_per_host), gpu=gpu,
                 compute_model=build_compute_model("roofline", gpu),
                 network=AlphaBetaNetwork(gpus_per_host=min(n, gpus_per_host)), symmetric=symmetric)
    t0 = time.perf_counter()
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = execute(job, on_start=probe.on_start)
    t1 = time.perf_counter()
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    probe.stop()
    m = probe.marks
    loop_s = m["last_Finished"] - m["first_Issue"]
    cpu = lambda a, b: (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)  # noqa: E731
    return {
        "ranks": n,
        "symmetric": symmetric,
        "steps": steps,
        "wall_s": round(t1 - t0, 2),
        "startup_s": round(m["first_Issue"] - t0, 2),
        "coordinator_cpu_s": round(cpu(self0, self1), 2),
        "ranks_cpu_s": round(cpu(kids0, kids1), 2),
        "wall_s_per_iteration": round(loop_s / steps, 3),
        "wall_s_per_rank_iteration": round(loop_s / steps / n, 4),
        "sim_ms_per_iteration": round(out.mean_ms_excluding_first() or 0.0, 4),
        "collectives": len(out.collectives),
        "peak_rss_mib_per_rank": round(probe.peak_rss_kib / 1024 / len(out.results), 1),
        "peak_pss_mib_per_rank": round(probe.peak_pss_kib / 1024 / len(out.results), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--gpus-per-host", type=int, default=8)
    ap.add_argument("--symmetric", action="store_true", help="execute rank 0 only (phantora run --symmetric)")
    args = ap.parse_args()
    t = time.perf_counter()
    prewarm()
    print(json.dumps({"prewarm_s": round(time.perf_counter() - t, 2)}), flush=True)
    for n in args.ranks:
        print(json.dumps(measure(n, args.steps, args.gpus_per_host, args.symmetric)), flush=True)


if __name__ == "__main__":
    main()
