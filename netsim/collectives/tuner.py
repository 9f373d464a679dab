"""NCCL's tuner: per call, the algorithm, protocol and channel count NCCL's cost model picks.

A transcription of NCCL's ``ncclTopoTuneModel`` / ``ncclTopoGetAlgoTime`` (src/graph/tuning.cc) and
the ring/tree channel trimming of ``topoGetAlgoInfo`` (src/enqueue.cc), NVIDIA/nccl master of
2026 (same constants as the 2.28.9 that made docs/data/netsim/nccl_h200x2_log.txt.gz: its printed
table, e.g. AllReduce Ring Simple 15.2 us / 360.0 GB/s on 2x H200, is reproduced exactly by
:func:`nccl_table`, tested). Only Ring and Tree exist here; NVLS, CollNet and PAT are marked
unavailable (no NVLink SHARP / SHARP switches are modelled; PAT needs one GPU per node).

The model works on NCCL's topology-search result, :class:`Graph`: channels and GB/s per channel
inside a node and across nodes. :func:`graph_for` derives it from the scenario the way NCCL's
search lands on H100/H200 (see its docstring); ``Graph`` can be given directly for other machines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALGOS = ("tree", "ring")
PROTOS = ("LL", "LL128", "Simple")
FUNCS = ("broadcast", "reduce", "all_gather", "reduce_scatter", "all_reduce")
"""NCCL's ncclFunc names (ncclFuncStr) in the tuner's order, as netsim kinds."""

# tuning.cc, ncclTunerConstantsDefaults: base latency (us) per algorithm x protocol
BASE_LAT = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4)}
# hwLatencies (us) per link type x algorithm x protocol
HW_LAT = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4)},
    "pci": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7)},
    "net": {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0)},
}
# Hopper rows (index [nNodes==1, 2, >2]) of llMaxBws, perChMaxRingLL128Bws, perChMaxTreeLL128Bws, perChMaxTreeBws
LL_MAX_BW_HOPPER_N1 = 141.0
LL_MAX_BW_CPU = {"intel": (39.0, 39.0, 20.4), "amd": (87.7, 22.5, 19.0)}  # multi-node: by CPU vendor
PER_CH_RING_LL128 = (36.7, 36.7, 36.7)
PER_CH_TREE_LL128 = (36.7, 36.7, 29.0)
PER_CH_TREE = (38.7, 41.4, 36.0)
# treeCorrectionFactor[proto][log2(nBytes/64)], 64 B .. 256 MiB
TREE_CORRECTION = (
    (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0),
    (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9),
)
MAX_NTHREADS = {"LL": 512, "LL128": 640, "Simple": 512}  # NCCL_{LL,LL128,SIMPLE}_MAX_NTHREADS
THREAD_THRESHOLD = {"LL": 8, "LL128": 8, "Simple": 64}  # NCCL_*_THREAD_THRESHOLD (ring LL: x nRanks)
SM90_NVLINK_GBPS = 20.6  # topo.h: what NCCL's search counts per NVLink4 link
SM90_SPEEDS_INTRA = (60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0, 3.0)  # search.cc


@dataclass(frozen=True, slots=True)
class Graph:
    """NCCL's topology-search result for the ring (the tree graph is derived from it)."""

    channels: int
    """Ring-graph channels (``graphs[RING]->nChannels``); the communicator runs twice as many."""
    bw_intra_gbps: float
    bw_inter_gbps: float
    nodes: int
    ranks: int
    intra: str = "nvlink"
    """``nvlink`` or ``pci``: NCCL's ``typeIntra``."""
    tree_bw_intra_gbps: float | None = None
    cpu: str = "intel"
    """Multi-node LL bandwidth and NET overhead depend on the CPU vendor (``intel``/``amd``)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What NCCL would run: algorithm, protocol, channels (CTAs) and its own time estimate."""

    algorithm: str
    protocol: str
    channels: int
    model_us: float


def _idx(nodes: int) -> int:
    return 0 if nodes == 1 else 1 if nodes == 2 else 2


def nccl_table(func: str, g: Graph) -> dict[tuple[str, str], tuple[float, float]]:
    """``(algorithm, protocol) -> (latency_us, bandwidth GB/s)`` as ncclTopoTuneModel fills it (bandwidth
    in algbw terms, 0 = unavailable), before NCCL_ALGO/NCCL_PROTO are applied."""
    n, nodes = g.ranks, g.nodes
    nsteps = 2 * (n - 1) if func == "all_reduce" else n - 1 if func in ("all_gather", "reduce_scatter") else n
    i2 = _idx(nodes)
    ll_max = LL_MAX_BW_HOPPER_N1 if nodes == 1 else LL_MAX_BW_CPU[g.cpu][i2]
    hw = g.intra if nodes == 1 else "net"
    ppn = n / nodes
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for a in ALGOS:
        if a == "tree" and func != "all_reduce":
            continue  # tree exists for all-reduce only (broadcast/reduce/AG/RS: ring, PAT, NVLS, CollNet)
        for pi, p in enumerate(PROTOS):
            if a == "tree":
                bw = (g.tree_bw_intra_gbps or g.bw_intra_gbps) if nodes <= 2 else g.bw_inter_gbps
            else:
                bw = g.bw_intra_gbps if nodes <= 2 else g.bw_inter_gbps
            bus = g.channels * bw
            if a == "ring" and p == "LL":
                bus = min(ll_max, bus * .5)
            if a == "ring" and p == "LL128":
                bus = min(bus * .92, g.channels * PER_CH_RING_LL128[i2])
            if a == "tree":
                bus = min(bus * .92, g.channels * PER_CH_TREE[i2])
                if p == "LL":
                    bus = min(bus / 3.8, ll_max)
                if p == "LL128":
                    bus = min(bus * (7.0 / 9.0 if nodes == 1 else 120.0 / 128.0), g.channels * PER_CH_TREE_LL128[i2])
            bus *= n / nsteps if a == "ring" else .5
            lat = BASE_LAT[a][pi]
            intra_lat = HW_LAT[g.intra][a][pi]
            inter_lat = HW_LAT["net"]["tree" if ppn == 1 else a][pi]
            if a == "ring":
                step = HW_LAT[hw][a][pi]
                if func in ("broadcast", "reduce"):
                    lat += step  # sameChannels graphs: one step latency for the whole chain
                else:
                    overhead = 0.0 if nodes == 1 else (1.0 if g.cpu == "intel" else 2.0) * (3 if p == "Simple" else 1)
                    intra_lat = max(intra_lat, overhead)
                    inter_steps = 0 if nodes == 1 else 2 * (nodes - 1) if func == "all_reduce" else nodes - 1
                    lat += (nsteps - inter_steps) * intra_lat + inter_steps * inter_lat
            else:
                lat += 2 * ((n // nodes - 1) * intra_lat + int(math.log2(nodes)) * inter_lat)
            out[(a, p)] = (lat, bus)
    return out


def algo_time_us(func: str, a: str, p: str, nbytes: float, g: Graph,
                 table: dict[tuple[str, str], tuple[float, float]]) -> float:
    """ncclTopoGetAlgoTime: latency + bytes / bandwidth with the tree correction and ring plateau."""
    lat, bw = table[(a, p)]
    if bw <= 0:
        return -1.0
    log_size = int(math.log2(max(1, int(nbytes) >> 6))) if nbytes >= 64 else -1
    if a == "tree" and func == "all_reduce" and 0 <= log_size < 23:
        bw *= TREE_CORRECTION[PROTOS.index(p)][log_size]
    if a == "ring" and p == "Simple" and g.nodes > 1 and func == "all_reduce" and \
            nbytes / (2 * g.channels * g.ranks) >= 64:
        lat *= 1.4  # "plateau effect of ring" (compute capability >= 80)
    return lat + nbytes / (1000 * bw)


def enabled_set(spec: str, func: str, names: tuple[str, ...]) -> set[str]:
    """NCCL_ALGO / NCCL_PROTO syntax (tuning.cc parseList): ``ring,tree``, ``^LL128``,
    ``ring;allreduce:tree``; a ``func:`` prefix uses NCCL's names (allreduce, allgather, ...)."""
    on = set(names)
    if not spec:
        return on
    nccl_name = func.replace("_", "")
    for token in (t for t in spec.split(";") if t):
        prefix, _, elems = token.rpartition(":")
        if prefix and prefix.lower() not in (f.replace("_", "") for f in FUNCS):
            raise ValueError(f"unknown function prefix {prefix!r} in {spec!r}")
        if prefix and prefix.lower() != nccl_name:
            continue
        neg = elems.startswith("^")
        picked = set()
        for e in elems.lstrip("^").split(","):
            match = [n for n in names if n.lower() == e.strip().lower()]
            if not match:
                raise ValueError(f"unknown element {e!r} in {spec!r}; valid: {', '.join(names)}")
            picked.add(match[0])
        on = set(names) - picked if neg else picked
    return on


def trim_channels(nbytes: float, channels: int, algo: str, proto: str, ranks: int) -> int:
    """topoGetAlgoInfo's ring/tree trimming: drop channels while nBytes < nc x nthreads x threshold."""
    thr = THREAD_THRESHOLD[proto] * (ranks if algo == "ring" and proto == "LL" else 1)
    nt, nc = MAX_NTHREADS[proto], channels
    while nbytes < nc * nt * thr and nc >= 2:
        nc -= 1
    return nc


def choose(func: str, nbytes: float, g: Graph, *, comm_channels: int, algo_spec: str = "",
           proto_spec: str = "") -> Choice:
    """NCCL's pick for a ``func`` call of ``nbytes`` (nccl-tests size) on graph ``g`` with
    ``comm_channels`` channels in the communicator; overrides as NCCL_ALGO / NCCL_PROTO."""
    if g.ranks <= 1:
        return Choice("ring", "Simple", 1, 0.0)
    table = nccl_table(func, g)
    algos = enabled_set(algo_spec, func, ALGOS)
    protos = enabled_set(proto_spec, func, PROTOS)
    best: tuple[float, str, str] | None = None
    for (a, p) in table:
        if a not in algos or p not in protos:
            continue
        t = algo_time_us(func, a, p, nbytes, g, table)
        if t >= 0 and (best is None or t < best[0]):
            best = (t, a, p)
    if best is None:
        raise ValueError(f"no algorithm/protocol available for {func} (NCCL_ALGO={algo_spec!r}, "
                         f"NCCL_PROTO={proto_spec!r}); netsim has ring and tree (tree: all_reduce only)")
    t, a, p = best
    return Choice(a, p, trim_channels(nbytes, comm_channels, a, p, g.ranks), t)


def ring_graph_intra(nvlinks: int, link_gbps: float = SM90_NVLINK_GBPS) -> tuple[int, float]:
    """NCCL's ring search on an NVLink host: the fastest speed of the SM90 list whose channels fit
    the per-GPU NVLink bandwidth (``nvlinks x 20.6``), then ncclTopoDupChannels (bw >= 50: twice the
    channels at half the speed). 2x H200 NV18: 6 x 60 -> 12 x 30 GB/s, as the shipped log prints."""
    total = nvlinks * link_gbps
    speed = next((s for s in SM90_SPEEDS_INTRA if s <= total), SM90_SPEEDS_INTRA[-1])
    ch = max(1, int(total // speed))
    if speed >= 50.0 or ch <= 4:
        ch, speed = 2 * ch, speed / 2
    return ch, speed
