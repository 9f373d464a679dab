"""UCCL's all-reduce testbed (6 hosts x 8 NICs, two racks) on the one-NIC-per-host ns-3 fabric.

The ns-3 backend builds one NIC per host, so this flow set treats each of the 48 NICs as an ns-3
host (24 per leaf, one leaf per rack) and keeps only the network hops of NCCL's hierarchical ring:
channel ``c`` leaves host ``h`` from NIC ``(c-1) % 8`` and enters host ``h+1`` at NIC ``c % 8``
(the flow engine's ``ring_order``), 16 channels, 2(n-1) = 94 steps of ``S / (48 x 16)`` bytes per
channel. The seven NVLink hops between a host's entry and exit GPU are not packets: a network
step ``s`` of host ``h`` waits for step ``s - 8`` of host ``h - 1`` plus seven NVLink step times
(``chunk / cta_gbps``), the ring's data dependency. NCCL's per-channel kernel rate (the flow
engine's multi-host NVLink cap, ``cta_gbps`` = 19.7 GB/s) is imposed as the NIC rate: a NIC
carries two channels, so ``nic_gbps = 2 x cta_gbps``; leaf-spine links stay 400 Gb/s, so three
channels hashed onto one link overload it (59 vs 50 GB/s) as in the flow engine.

Differences from the flow engine's scenario, stated: ns-3's leaf-spine has one link per
(leaf, spine), so 24 spines and 24 paths (the flow engine: 8 spines x 3 links, 72 paths); TCP
with DCTCP stands in for RoCE with DCQCN, no PFC (netsim/ns3/README.md); no protocol latencies.
"""

from __future__ import annotations

from netsim.ns3.flowsets import ecmp_spine
from netsim.ns3.spec import FabricSpec, PacketFlow

HOSTS, NICS, CHANNELS = 6, 8, 16


def uccl_testbed_fabric(scale: float, cta_gbps: float = 19.6875) -> FabricSpec:
    """48 NIC-hosts, 24 per leaf, 24 spines at 400 Gb/s; rates divided by ``scale``."""
    return FabricSpec(n_hosts=HOSTS * NICS, hosts_per_leaf=3 * NICS, n_spines=24,
                      nic_gbps=2 * cta_gbps * 8 / scale, uplink_gbps=400 / scale, hop_latency_ns=600)


def uccl_testbed_all_reduce(size_bytes: int, *, multipath: bool, seed: int, scale: float,
                       cta_gbps: float = 19.6875) -> list[PacketFlow]:
    """The network messages of one ring all-reduce of ``size_bytes`` (already scaled)."""
    n = HOSTS * NICS
    steps = 2 * (n - 1)
    chunk = max(1, size_bytes // (n * CHANNELS))
    nvl_ns = round(chunk / (cta_gbps / scale))  # one NVLink step at the channel's rate (bytes/ns)
    flows: list[PacketFlow] = []

    def fid(ch: int, h: int, s: int) -> int:
        return (ch * HOSTS + h) * steps + s

    for ch in range(CHANNELS):
        for h in range(HOSTS):
            src = h * NICS + (ch - 1) % NICS
            dst = ((h + 1) % HOSTS) * NICS + ch % NICS
            spines = tuple(range(24)) if multipath else (ecmp_spine(src, dst, ch, 24, seed),)
            for s in range(steps):
                deps: tuple[int, ...]
                if s >= NICS:  # data from the previous host's exit, then 7 NVLink hops
                    deps, delay = (fid(ch, (h - 1) % HOSTS, s - NICS),), (NICS - 1) * nvl_ns
                else:  # data that started inside this host s NVLink hops ago
                    deps, delay = (), s * nvl_ns
                flows.append(PacketFlow(flow_id=fid(ch, h, s), src_host=src, dst_host=dst, size_bytes=chunk,
                                        spines=spines, deps=deps, delay_ns=delay, qp=ch))
    return flows
