"""Run a script with CUDA memory history on and dump ``torch.cuda.memory._snapshot()`` at its end.

The same command on a GPU and under the simulator, so the two allocation streams can be compared
(``benchmarks/memory_diff.py``)::

    python3 benchmarks/real/memory_history.py --out real.pickle SCRIPT ARGS          # on the GPU
    phantora run benchmarks/real/memory_history.py --out sim.pickle SCRIPT ARGS      # simulated
    python3 benchmarks/memory_diff.py real.pickle sim.pickle

Only a launcher: the script runs unmodified (``runpy``, ``__main__``, its own ``sys.argv``).
"""

from __future__ import annotations

import argparse
import pickle
import runpy
import sys

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="where the snapshot pickle goes")
    p.add_argument("--max-entries", type=int, default=2_000_000)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    torch.cuda.memory._record_memory_history(enabled="all", context="all", stacks="python", max_entries=a.max_entries)
    sys.argv = [a.script, *a.args]
    try:
        runpy.run_path(a.script, run_name="__main__")
    finally:
        with open(a.out, "wb") as f:
            pickle.dump(torch.cuda.memory._snapshot(), f)
        print(f"memory history: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
