"""Plots of run results and sweep tables (matplotlib, headless), shared by ``phantora report``
and the notebooks so both draw the same figures from the same tables.

Each ``plot_*`` function takes pandas tables and returns a matplotlib ``Figure``; the
``load_*`` functions read a results folder. Nothing here runs a simulation except
:func:`link_utilisation`, which replays one collective through netsim's flow engine
to see which links it loads (the engine reports no per-link counters itself).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

BREAKDOWN_COLS = ("compute_ms", "exposed_comm_ms", "idle_ms")
COLOURS = {"compute_ms": "#4c72b0", "exposed_comm_ms": "#dd8452", "idle_ms": "#c7c7c7"}
LABELS = {"compute_ms": "compute", "exposed_comm_ms": "exposed communication", "idle_ms": "idle"}


def short(name: str) -> str:
    """``network.fabric.oversubscription`` → ``oversubscription`` (for axis labels)."""
    from phantora.compose import short_name

    return short_name(name)


# ----------------------------------------------------------------------------- loading


def load_sweep(path: str | Path) -> tuple[pd.DataFrame, list[str], str]:
    """(table, swept field names, command) of a sweep folder or its ``sweep.parquet``."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    df = pd.read_parquet(folder / "sweep.parquet" if p.is_dir() else p)
    swept: list[str] = []
    command = "netbench" if "busbw_gbps" in df.columns else "run"
    index = folder / "points.json"
    if index.is_file():
        meta = json.loads(index.read_text())
        swept, command = list(meta.get("swept", [])), meta.get("command", command)
    else:
        reserved = {"point_id", "status", "error", "point_wall_s"}
        swept = [c for c in df.columns if "." in c or c in ("hosts", "gpus_per_host", "gpu")]
        swept = [c for c in swept if c not in reserved]
    return df, swept, command


def load_run(path: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of one ``phantora run`` results folder that exist (breakdown, collectives, ops)."""
    p = Path(path)
    out: dict[str, pd.DataFrame] = {}
    for name in ("breakdown", "collectives", "ops"):
        f = p / f"{name}.parquet"
        if f.is_file():
            out[name] = pd.read_parquet(f)
    return out


def point_labels(df: pd.DataFrame, swept: Sequence[str]) -> list[str]:
    """One short label per row: the swept values, in field order (the axis names the fields)."""
    return [", ".join(str(r[c]) for c in swept) for _, r in df.iterrows()]


# ----------------------------------------------------------------------------- sweep plots


def plot_breakdown_per_point(df: pd.DataFrame, swept: Sequence[str]) -> Figure:
    """Stacked bars of the steady-state iteration (compute / exposed comm / idle) per sweep point."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    ok = ok.sort_values(list(swept)) if swept else ok
    labels = point_labels(ok, swept)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(ok) + 3.5), 4.8))
    bottom = np.zeros(len(ok))
    x = np.arange(len(ok))
    for col in BREAKDOWN_COLS:
        vals = ok[col].to_numpy(float) if col in ok else np.zeros(len(ok))
        ax.bar(x, vals, bottom=bottom, color=COLOURS[col], label=LABELS[col])
        bottom += vals
    if "iteration_ms" in ok:
        ax.scatter(x, ok["iteration_ms"], marker="_", s=200, color="black", label="iteration (slowest rank)",
                   zorder=3)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel(", ".join(short(c) for c in swept))
    ax.set_ylabel("simulated ms / iteration")
    ax.set_title("Iteration time breakdown per sweep point (steady state, mean over ranks)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _facets(df: pd.DataFrame, swept: Sequence[str], x: str, hue: str | None):
    rest = [c for c in swept if c not in (x, hue)]
    if not rest:
        return [((), df)]
    return list(df.groupby(rest, sort=True)) if len(rest) > 1 else [
        ((k,), g) for k, g in df.groupby(rest[0], sort=True)]


def plot_metric_vs(df: pd.DataFrame, swept: Sequence[str], metric: str, x: str, hue: str | None) -> Figure:
    """``metric`` against swept field ``x``, one line per ``hue`` value, one panel per other field."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    facets = _facets(ok, swept, x, hue)
    fig, axes = plt.subplots(1, len(facets), figsize=(4.2 * len(facets) + 0.8, 3.8), squeeze=False,
                             sharey=True)
    rest = [c for c in swept if c not in (x, hue)]
    for ax, (key, part) in zip(axes[0], facets, strict=True):
        groups = part.groupby(hue, sort=True) if hue else [(None, part)]
        for h, g in groups:
            g = g.sort_values(x)
            ax.plot(g[x], g[metric], marker="o", label=f"{short(hue)}={h}" if hue else None)
        ax.set_xlabel(short(x))
        if pd.api.types.is_numeric_dtype(part[x]) and part[x].min() > 0 and part[x].max() / part[x].min() >= 8:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(part[x].unique()), [str(v) for v in sorted(part[x].unique())])
        if rest:
            ax.set_title(", ".join(f"{short(c)}={v}" for c, v in zip(rest, key, strict=True)), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    if hue:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def speedup(df: pd.DataFrame, swept: Sequence[str], metric: str, by: str, baseline: object) -> pd.DataFrame:
    """``metric`` of the ``by == baseline`` point divided by each point's, at equal other swept fields.

    For a time metric, > 1 means faster than the baseline (e.g. multipath over single-path).
    Returns the other swept fields, ``by``, ``metric``, ``baseline_<metric>`` and ``speedup``.
    """
    ok = df[df["status"] == "ok"] if "status" in df else df
    rest = [c for c in swept if c != by]
    base = ok[ok[by] == baseline][[*rest, metric]].rename(columns={metric: f"baseline_{metric}"})
    out = ok[[*rest, by, metric]].merge(base, on=rest) if rest else ok[[by, metric]].assign(
        **{f"baseline_{metric}": float(base[f"baseline_{metric}"].iloc[0])})
    out["speedup"] = out[f"baseline_{metric}"] / out[metric]
    return out[out[by] != baseline].reset_index(drop=True)


def size_column(df: pd.DataFrame) -> str:
    for c in ("size_bytes", "bytes", "size", "nbytes"):
        if c in df:
            return c
    raise KeyError("no message-size column (size_bytes / bytes) in the netbench table")


def plot_busbw_vs_size(df: pd.DataFrame, swept: Sequence[str]) -> Figure:
    """Bus bandwidth vs message size, one line per transport (or first swept field), one panel per rest."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    size = size_column(ok)
    hue = next((c for c in swept if c.endswith("transport.name")), swept[0] if swept else None)
    facets = _facets(ok, swept, size, hue)
    ncol = min(len(facets), 3)
    nrow = -(-len(facets) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol + 0.6, 3.6 * nrow), squeeze=False,
                             sharey=True)
    rest = [c for c in swept if c not in (size, hue)]
    for ax, (key, part) in zip(axes.flat, facets, strict=False):
        for h, g in (part.groupby(hue, sort=True) if hue else [(None, part)]):
            g = g.sort_values(size)
            ax.plot(g[size], g["busbw_gbps"], marker=".", label=str(h) if hue else None)
        ax.set_xscale("log", base=2)
        ticks = [2**k for k in range(10, 40, 4) if ok[size].min() <= 2**k <= ok[size].max()]
        ax.set_xticks(ticks, [_fmt_bytes(t) for t in ticks], fontsize=8)
        ax.set_xlabel("message size")
        if rest:
            ax.set_title(", ".join(f"{short(c)}={v}" for c, v in zip(rest, key, strict=True)), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(facets):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("bus bandwidth (GB/s)")
    if hue:
        axes.flat[0].legend(fontsize=8, title=short(hue), title_fontsize=8)
    fig.tight_layout()
    return fig


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:g}{unit}"
        n /= 1024
    return f"{n:g}TiB"


# ----------------------------------------------------------------------------- run plots


def plot_run_breakdown(breakdown: pd.DataFrame) -> Figure:
    """Stacked bars per iteration (mean over ranks) of one run's ``breakdown.parquet``."""
    g = breakdown.groupby("iteration")[["compute_us", "exposed_comm_us", "idle_us"]].mean() / 1e3
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(g) + 2), 4))
    bottom = np.zeros(len(g))
    for col, src in zip(BREAKDOWN_COLS, ("compute_us", "exposed_comm_us", "idle_us"), strict=True):
        ax.bar(g.index, g[src], bottom=bottom, color=COLOURS[col], label=LABELS[col])
        bottom += g[src].to_numpy()
    ax.set_xlabel("iteration")
    ax.set_ylabel("simulated ms (mean over ranks)")
    ax.set_title("Iteration time breakdown")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rank_timeline(tables: dict[str, pd.DataFrame], iteration: int | None = None) -> Figure:
    """Per-rank timeline of one iteration: kernels (``ops``) and collectives in flight.

    Uses the iteration bounds of ``breakdown`` (default: the last iteration, usually steady
    state); ranks without per-op records show only their collectives.
    """
    bd = tables["breakdown"]
    it = int(bd["iteration"].max()) if iteration is None else iteration
    bounds = bd[bd["iteration"] == it]
    t0, t1 = float(bounds["start_us"].min()), float(bounds["end_us"].max())
    ranks = sorted(bounds["rank"].unique())
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(ranks) + 1.6))
    ops = tables.get("ops")
    for i, r in enumerate(ranks):
        if ops is not None and "rank" in ops:
            o = ops[(ops["rank"] == r) & (ops["start_us"] < t1) & (ops["start_us"] + ops["dur_us"] > t0)]
            comp = o[o["source"] != "external"]
            ax.broken_barh(list(zip((comp["start_us"] - t0) / 1e3, comp["dur_us"] / 1e3, strict=True)),
                           (i - 0.4, 0.45), color=COLOURS["compute_ms"])
        coll = tables.get("collectives")
        if coll is not None and len(coll):
            c = coll[(coll["start_us"] < t1) & (coll["end_us"] > t0)]
            ax.broken_barh(list(zip((c["start_us"] - t0) / 1e3, (c["end_us"] - c["start_us"]) / 1e3,
                                    strict=True)), (i + 0.05, 0.35), color=COLOURS["exposed_comm_ms"])
    ax.set_yticks(range(len(ranks)), [f"rank {r}" for r in ranks])
    ax.set_xlabel(f"simulated ms since the start of iteration {it}")
    ax.set_xlim(0, (t1 - t0) / 1e3)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=COLOURS["compute_ms"], label="kernels"),
                       Patch(color=COLOURS["exposed_comm_ms"], label="collectives in flight")],
              fontsize=8, loc="upper right")
    ax.set_title(f"Per-rank timeline, iteration {it}")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- link utilisation


def link_utilisation(scenario: dict[str, Any], kind: str = "all_reduce", nbytes: int = 256 * 2**20,
                     bins: int = 60) -> tuple[pd.DataFrame, float]:
    """Replay one ``kind`` collective over all GPUs of ``scenario`` in netsim's flow engine and
    return (utilisation per inter-host link × time bin in [0, 1], collective duration in µs).

    Only NIC and leaf-spine links are kept (the ones transports and oversubscription change).
    """
    from netsim.config import cluster_from_dict
    from netsim.engine import FlowNetwork

    cluster = cluster_from_dict(scenario)
    samples: list[tuple[int, int, np.ndarray]] = []  # (t0_ns, t1_ns, load per link in bytes/ns)

    class Recording(FlowNetwork):
        def _advance(self, t: int) -> None:
            if t > self._now and len(self._rates):
                load = np.zeros(len(self.capacity))
                for spec, rate in zip(self._specs, self._rates, strict=True):
                    np.add.at(load, np.asarray(spec.links), rate * np.asarray(spec.weights, float))
                samples.append((self._now, t, load))
            super()._advance(t)

    net = Recording.build(cluster.hosts, cluster.gpus_per_host, cluster.network)
    h = net.submit_collective(kind, list(range(cluster.world_size)), nbytes, 0)
    net.run()
    end_ns = max(net.result(h).values())
    names = list(getattr(net.topology, "link_names", []))
    keep = [i for i, n in enumerate(names) if not str(n).startswith(("nvl", "pcie"))] or list(range(len(names)))
    edges = np.linspace(0, end_ns, bins + 1)
    util = np.zeros((len(keep), bins))
    cap = net.capacity[keep]
    for a, b, load in samples:
        for k in range(bins):
            lo, hi = max(a, edges[k]), min(b, edges[k + 1])
            if hi > lo:
                util[:, k] += load[keep] / cap * (hi - lo)
    util /= np.diff(edges)
    rows = [{"link": names[i], "bin": k, "t_us": edges[k] / 1e3, "utilisation": util[j, k]}
            for j, i in enumerate(keep) for k in range(bins)]
    return pd.DataFrame(rows), end_ns / 1e3


def plot_link_heatmap(util: pd.DataFrame, dur_us: float, title: str = "") -> Figure:
    """Heat map of link utilisation (rows: links, columns: time bins of the collective)."""
    grid = util.pivot(index="link", columns="bin", values="utilisation")
    grid = grid.loc[sorted(grid.index, key=_link_order)]
    fig, ax = plt.subplots(figsize=(9, min(12.0, 0.12 * len(grid) + 1.8)))
    im = ax.imshow(grid.to_numpy(), aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1,
                   extent=(0, dur_us / 1e3, len(grid), 0))
    step = max(1, len(grid) // 40)
    ax.set_yticks(np.arange(0, len(grid), step) + 0.5, list(grid.index[::step]), fontsize=6)
    ax.set_xlabel("ms since the collective started")
    ax.set_title(title or "Link utilisation")
    fig.colorbar(im, ax=ax, label="utilisation (fraction of capacity)")
    fig.tight_layout()
    return fig


def _link_order(name: str) -> tuple[int, str, int]:
    order = {"nic_up": 0, "nic_dn": 1, "leaf": 2}
    kind = next((k for k in order if name.startswith(k)), "")
    digits = "".join(ch if ch.isdigit() else " " for ch in name).split()
    return order.get(kind, 3), name.rstrip("0123456789"), int(digits[-1]) if digits else 0


def save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = out_dir / f"{stem}.{fmt}"
        fig.savefig(p, dpi=120)
        paths.append(p)
    plt.close(fig)
    return paths
