"""What is live at the peak, real GPU against simulation: two ``torch.cuda.memory._snapshot()`` pickles.

Each snapshot's trace (``device_traces``) is replayed block by block (``alloc`` adds a block,
``free_completed`` removes it) to find the moment of the highest allocated total, and the blocks
live then are grouped by where they were allocated: the innermost Python frame outside torch's own
package (the model's or the script's line). Allocations made by the autograd engine have no Python
frame on a GPU (its backward runs on a C++ thread) while the simulator runs backward on the
calling thread; both are labelled ``(backward / no Python frame)``. One row per place, largest
difference first, so a peak that differs shows which allocation site holds the difference::

    python3 benchmarks/memory_diff.py real.pickle sim.pickle [--top 20] [--json]

Snapshots come from ``benchmarks/real/memory_history.py`` (the same launcher on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from collections import Counter
from typing import Any

import torch

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
NO_FRAME = "(backward / no Python frame)"


def site_of(frames: list[dict[str, Any]]) -> str:
    """Allocation site: innermost Python frame outside torch (see module doc)."""
    py = [f for f in frames if str(f.get("filename", "")).endswith(".py")]
    if any(f["name"] == "_engine_run_backward" for f in py):
        return NO_FRAME
    for f in py:
        name = str(f["filename"])
        if "/torch/" not in name and not name.startswith(_TORCH_DIR):
            return f"{_short(name)}:{f['line']} {f['name']}"
    return NO_FRAME if not py else f"torch: {_short(str(py[0]['filename']))}:{py[0]['line']} {py[0]['name']}"


def _short(path: str) -> str:
    parts = path.split(os.sep)
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return os.sep.join(parts[parts.index(anchor) + 1 :])
    return os.sep.join(parts[-2:])


def live_at_peak(snapshot: dict[str, Any], device: int = 0) -> tuple[int, list[tuple[int, str]]]:
    """``(peak bytes, [(size, site)...])`` of the blocks live at the trace's highest allocated total
    (two passes: find the peak's position, then replay up to it)."""
    trace = snapshot["device_traces"][device]

    def replay(stop: int) -> tuple[int, int, dict[int, int]]:
        live: dict[int, int] = {}
        total = peak = where = 0
        for i, e in enumerate(trace[:stop]):
            if e["action"] == "alloc":
                live[e["addr"]] = i
                total += e["size"]
                if total > peak:
                    peak, where = total, i + 1
            elif e["action"] == "free_completed" and e["addr"] in live:
                total -= trace[live.pop(e["addr"])]["size"]
        return peak, where, live

    peak, where, _ = replay(len(trace))
    _, _, live = replay(where)
    return peak, [(trace[i]["size"], site_of(trace[i].get("frames", []))) for i in live.values()]


def diff(real: dict[str, Any], sim: dict[str, Any]) -> dict[str, Any]:
    (rp, rl), (sp, sl) = live_at_peak(real), live_at_peak(sim)
    rb, sb, rn, sn = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    for size, site in rl:
        rb[site] += size
        rn[site] += 1
    for size, site in sl:
        sb[site] += size
        sn[site] += 1
    rows = [
        {"site": s, "real_mib": rb[s] / 2**20, "sim_mib": sb[s] / 2**20, "diff_mib": (sb[s] - rb[s]) / 2**20,
         "real_blocks": rn[s], "sim_blocks": sn[s]}
        for s in set(rb) | set(sb)
    ]  # fmt: skip
    rows.sort(key=lambda r: -abs(r["diff_mib"]))
    return {"real_peak_mib": rp / 2**20, "sim_peak_mib": sp / 2**20, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("real")
    p.add_argument("sim")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--json", action="store_true", help="JSON lines: a summary line, then one per site")
    a = p.parse_args()
    with open(a.real, "rb") as f, open(a.sim, "rb") as g:
        d = diff(pickle.load(f), pickle.load(g))
    if a.json:
        print(json.dumps({"kind": "summary", "real_peak_mib": d["real_peak_mib"], "sim_peak_mib": d["sim_peak_mib"]}))
        for r in d["rows"]:
            print(json.dumps({"kind": "site", **r}))
        return
    err = (d["sim_peak_mib"] / d["real_peak_mib"] - 1) * 100 if d["real_peak_mib"] else float("nan")
    print(f"peak allocated: real {d['real_peak_mib']:.1f} MiB, simulated {d['sim_peak_mib']:.1f} MiB ({err:+.2f}%)")
    print(f"{'real MiB':>10} {'sim MiB':>10} {'diff':>9} {'blocks r/s':>11}  site (live at each side's peak)")
    for r in d["rows"][: a.top]:
        blocks = f"{r['real_blocks']}/{r['sim_blocks']}"
        print(f"{r['real_mib']:10.1f} {r['sim_mib']:10.1f} {r['diff_mib']:+9.1f} {blocks:>11}  {r['site']}")


if __name__ == "__main__":
    main()
