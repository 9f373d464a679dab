"""Host CPU the interpose shim spends per dispatched op, on a fixed set of programs.

Simulation speed is the shim's per-op cost times the number of ops (``docs/performance.md``), so
this benchmark runs three unmodified programs under the shim, one rank, in a fresh process each,
and prints one JSON line per program:

- ``gpt``: ``examples/gpt/train.py`` (small config: 4 layers, 256 wide, seq 256, 6 steps);
- ``hf``: ``examples/zoo/hf_lm.py --model llama`` (2 layers, 256 wide, seq 128, 4 steps);
- ``decode``: ``examples/generate/generate.py`` (HF ``generate()``, ~1B-parameter Llama by default:
  hidden 2048, 16 layers, batch 1, ``--decode-tokens`` new tokens).

Fields: ``ops`` (calls that reach ``SimDispatchMode.__torch_dispatch__``, the C++ ``prim.device``
queries excluded), ``cpu_s`` (process CPU from the first op on a fake tensor to the end of the
script: model construction on the CPU before it is left out), ``us_per_op`` (``cpu_s / ops``:
everything a dispatched op costs, the script's own Python and autograd included), ``shim_us_per_op``
(CPU spent inside the outermost ``__torch_dispatch__`` per op), ``steady_us_per_op`` and
``steady_shim_us_per_op`` (the same over the second half of the ops only: the common path, once each
signature has been seen), ``wall_s`` (the whole script) and,
for decode, ``wall_s_per_token`` (wall from the first fake op to the end, over the tokens of both
``generate`` calls).

    python benchmarks/shim_speed.py                     # all three
    python benchmarks/shim_speed.py --programs decode --decode-tokens 128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRAMS: dict[str, list[str]] = {
    "gpt": ["examples/gpt/train.py", "--n-layer", "4", "--n-embd", "256", "--n-head", "4", "--seq-len", "256",
            "--batch-size", "4", "--vocab-size", "4096", "--steps", "6"],
    "hf": ["examples/zoo/hf_lm.py", "--model", "llama", "--hidden", "256", "--layers", "2", "--batch-size", "2",
           "--seq-len", "128", "--steps", "4"],
    "decode": ["examples/generate/generate.py", "--hidden", "2048", "--layers", "16", "--batch-size", "1"],
}
WARMUP_TOKENS = 2
"""``generate.py``'s warm-up call generates this many tokens before the timed one."""

_process_time = time.process_time
_wall = time.perf_counter  # saved before the shim patches ``time``


def run_one(name: str, decode_tokens: int) -> dict:
    """Run program ``name`` under the shim in this process and measure it."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor

    import profiles
    from interpose import RankConfig, run_script
    from interpose.dispatch import _PRIM_DEVICE, SimDispatchMode

    torch.set_num_threads(1)  # as every rank of a multi-rank run
    argv = list(PROGRAMS[name])
    if name == "decode":
        argv += ["--new-tokens", str(decode_tokens)]
    script, args = str(REPO / argv[0]), argv[1:]

    st = {"ops": 0, "depth": 0, "shim_s": 0.0, "cpu0": None, "wall0": None}
    marks: list[float] = []  # process CPU at each counted op: the steady second half is measured apart
    shim_marks: list[float] = []  # CPU inside the shim so far, at each counted op
    inner = SimDispatchMode.__torch_dispatch__

    def counted(self, func, types, args=(), kwargs=None):
        if st["cpu0"] is None:  # not counting yet: CPU work before the first op on a fake tensor
            if func is _PRIM_DEVICE or not any(isinstance(a, FakeTensor) for a in args):
                return inner(self, func, types, args, kwargs)
            st["cpu0"], st["wall0"] = _process_time(), _wall()
        if func is _PRIM_DEVICE:
            return inner(self, func, types, args, kwargs)
        st["ops"] += 1
        marks.append(_process_time())
        shim_marks.append(st["shim_s"])
        if st["depth"]:
            return inner(self, func, types, args, kwargs)
        st["depth"] = 1
        t = _process_time()
        try:
            return inner(self, func, types, args, kwargs)
        finally:
            st["shim_s"] += _process_time() - t
            st["depth"] = 0

    SimDispatchMode.__torch_dispatch__ = counted  # type: ignore[method-assign]
    gpu = profiles.get_gpu("h100")
    cfg = RankConfig(rank=0, world_size=1, local_rank=0, local_world_size=1, gpu=gpu,
                     compute_model=profiles.build_compute_model("roofline", gpu), memory_limit_bytes=None,
                     host_time="zero")
    w0 = _wall()
    res = run_script(script, args, cfg)
    w1, c1 = _wall(), _process_time()
    if res.error:
        raise SystemExit(f"{name} failed:\n{res.error}")
    ops = st["ops"]
    out = {
        "program": name,
        "ops": ops,
        "cpu_s": round(c1 - st["cpu0"], 3),
        "us_per_op": round((c1 - st["cpu0"]) / ops * 1e6, 1),
        "shim_us_per_op": round(st["shim_s"] / ops * 1e6, 1),
        "steady_us_per_op": round((c1 - marks[ops // 2]) / (ops - ops // 2) * 1e6, 1),
        "steady_shim_us_per_op": round((st["shim_s"] - shim_marks[ops // 2]) / (ops - ops // 2) * 1e6, 1),
        "wall_s": round(w1 - w0, 2),
        "sim_end_ms": round(res.end_time_us / 1e3, 3),
    }
    if name == "decode":
        tokens = decode_tokens + WARMUP_TOKENS
        out["tokens"] = tokens
        out["wall_s_per_token"] = round((w1 - st["wall0"]) / tokens, 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", nargs="+", choices=list(PROGRAMS), default=list(PROGRAMS))
    ap.add_argument("--decode-tokens", type=int, default=32, help="new tokens of the timed generate() call")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per program (fresh processes); prints the one with the least CPU, with the "
                         "spread of us_per_op and steady_shim_us_per_op over the runs")
    ap.add_argument("--one", choices=list(PROGRAMS), help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one, a.decode_tokens)), flush=True)
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for name in a.programs:  # a fresh process each: no caches carried from one program to the next
        runs = []
        for _ in range(max(1, a.repeat)):
            p = subprocess.run([sys.executable, __file__, "--one", name, "--decode-tokens", str(a.decode_tokens)],
                               cwd=REPO, env=env, capture_output=True, text=True)
            line = next((x for x in reversed(p.stdout.splitlines()) if x.startswith('{"program"')), None)
            if p.returncode != 0 or line is None:
                print(json.dumps({"program": name, "error": (p.stderr or p.stdout)[-2000:]}), flush=True)
                break
            runs.append(json.loads(line))
        if runs:
            best = min(runs, key=lambda r: r["cpu_s"])
            if len(runs) > 1:
                for f in ("us_per_op", "steady_shim_us_per_op"):
                    best[f + "_range"] = [min(r[f] for r in runs), max(r[f] for r in runs)]
                best["runs"] = len(runs)
            print(json.dumps(best), flush=True)


if __name__ == "__main__":
    main()
