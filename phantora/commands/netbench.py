"""``phantora netbench``: nccl-tests-style table of simulated collectives, one column group per transport.

Torch-free: the scenario's network keys are read through :mod:`phantora.compose` (``extends:``)
and :func:`netsim.config.cluster_from_dict`, never through the full scenario loader; the network
is the one ``network.backend`` names (:func:`netsim.backend.build_network`), as in ``phantora run``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from netsim.config import ClusterConfig

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``16M``, ``1GiB``, ``4096`` → bytes; ``ValueError`` for anything that is not a finite size
    (``infG``, ``nanK``, ``-1``, ``1e400``)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = 1
    if t and t[-1] in UNITS:
        t, unit = t[:-1], UNITS[t[-1]]
    try:
        value = float(t) * unit
        size = int(value)
    except (ValueError, OverflowError):  # int(inf) is an OverflowError, int(nan) a ValueError
        raise ValueError(f"not a size: {text!r}") from None
    if size != value or size <= 0:
        raise ValueError(f"not a whole positive number of bytes: {text!r}")
    return size


def human(n: int) -> str:
    for u, f in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= f and n % f == 0:
            return f"{n // f}{u}"
    return str(n)


def bench_rows(cluster: ClusterConfig, op: str, sizes: list[int], transports: list[str], ranks: int) -> list[dict]:
    """One row per size: time/algbw/busbw per transport and the multipath/single-path ratio, each on
    a fresh network of the scenario's ``network.backend``."""
    from netsim.backend import build_network
    from netsim.collectives import bus_factor

    rows = []
    group = list(range(ranks))
    for size in sizes:
        row: dict = {"op": op, "size_bytes": size, "ranks": ranks}
        for name in transports:
            net = build_network(cluster, transport=name)
            h = net.submit_collective(op, group, size, 0)
            net.run()
            t_us = max(net.result(h).values()) / 1e3
            algbw = size / (t_us * 1e3)  # bytes/ns = GB/s
            row[f"{name}_time_us"] = round(t_us, 3)
            row[f"{name}_algbw_gbps"] = round(algbw, 3)
            row[f"{name}_busbw_gbps"] = round(algbw * bus_factor(op, ranks), 3)
            choice = getattr(net, "choice_of", lambda h: "")(h)  # NCCL's algorithm/protocol/channels
            if choice and "nccl" not in row:
                row["nccl"] = choice
        if "uccl_multipath" in transports and "single_path" in transports:
            row["multipath_over_single"] = round(row["single_path_time_us"] / row["uccl_multipath_time_us"], 3)
        rows.append(row)
    return rows


@click.command()
@click.option("--scenario", "scenario_path", required=True, type=click.Path(dir_okay=False),
              help="Scenario YAML (hosts, gpus_per_host, network).")
@click.option("--op", default="all_reduce", show_default=True,
              help="all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, reduce, send_recv.")
@click.option("--min-bytes", default="1K", show_default=True)
@click.option("--max-bytes", default="1G", show_default=True)
@click.option("--step-factor", default=4, show_default=True, help="Size multiplier between rows.")
@click.option("--transports", default="single_path,uccl_multipath,ideal", show_default=True)
@click.option("--ranks", type=click.IntRange(min=1), default=None, help="Group size (first N GPUs, N >= 1); default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON lines.")
def netbench(scenario_path: str, op: str, min_bytes: str, max_bytes: str, step_factor: int,
             transports: str, ranks: int | None, as_json: bool) -> None:
    """Simulated nccl-tests: time, algbw and busbw of a collective per size and transport."""
    from common.registry import UnknownVariantError
    from netsim.collectives import COLLECTIVES
    from netsim.config import ConfigError, cluster_from_dict
    from netsim.transports import TRANSPORTS
    from phantora.compose import ComposeError, resolve_scenario_dict

    def fail(msg: str) -> None:
        click.echo(f"error: {msg}", err=True)
        sys.exit(2)

    try:
        data = resolve_scenario_dict(Path(scenario_path), source=scenario_path)
        cluster = cluster_from_dict(data, scenario_path)
    except (ComposeError, ConfigError) as e:
        return fail(str(e))
    sizes_given = {}
    for opt, text in (("--min-bytes", min_bytes), ("--max-bytes", max_bytes)):
        try:
            sizes_given[opt] = parse_size(text)
        except ValueError as e:
            return fail(f"{opt}: {e}")
    lo, hi = sizes_given["--min-bytes"], sizes_given["--max-bytes"]
    names = [t.strip() for t in transports.split(",") if t.strip()]
    try:
        COLLECTIVES.get(op)
        for t in names:
            TRANSPORTS.get(t)
    except UnknownVariantError as e:
        return fail(str(e))
    n = cluster.world_size if ranks is None else ranks
    if not 1 <= n <= cluster.world_size or (op == "send_recv" and n != 2):
        return fail(f"--ranks {n}: must be 1..{cluster.world_size} (2 for send_recv)")
    if lo <= 0 or hi < lo or step_factor < 2:
        return fail("need 0 < --min-bytes <= --max-bytes and --step-factor >= 2")
    sizes = []
    s = lo
    while s <= hi:
        sizes.append(s)
        s *= step_factor
    try:
        rows = bench_rows(cluster, op, sizes, names, n)
    except (TypeError, ValueError, KeyError) as e:  # a network netsim cannot build
        msg = (str(e).strip() or type(e).__name__).splitlines()[0]
        return fail(f"{scenario_path}: {msg}" if msg.startswith("network.") else f"{scenario_path}: network: {msg}")
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cluster.name or scenario_path}: {op} over {n} GPUs "
                        f"({cluster.hosts} hosts x {cluster.gpus_per_host})")
    table.add_column("size", justify="right")
    if "nccl" in rows[0]:
        table.add_column("NCCL algo/\nproto/ch", justify="left")
    for t in names:
        table.add_column(f"{t}\ntime_us", justify="right")
        table.add_column("algbw\nGB/s", justify="right")
        table.add_column("busbw\nGB/s", justify="right")
    if "multipath_over_single" in rows[0]:
        table.add_column("uccl/single\nspeedup", justify="right")
    for r in rows:
        cells = [human(r["size_bytes"])] + ([r.get("nccl", "")] if "nccl" in rows[0] else [])
        for t in names:
            cells += [f"{r[f'{t}_time_us']:.1f}", f"{r[f'{t}_algbw_gbps']:.2f}", f"{r[f'{t}_busbw_gbps']:.2f}"]
        if "multipath_over_single" in r:
            cells.append(f"{r['multipath_over_single']:.2f}x")
        table.add_row(*cells)
    # wide enough for every column even when stdout is not a terminal (rich then assumes 80)
    Console(width=max(Console().width, 24 + 34 * len(names))).print(table)
