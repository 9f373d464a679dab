"""NCCL protocols: LL (low latency, half the link), LL128, Simple (full bandwidth, higher latency).

Latencies are of the order of NCCL's tuning model (src/graph/tuning.cc: base latency per
call, a per-step hardware latency per NVLink / network hop); efficiencies are the data
fraction of each protocol's line format (LL: 8 of 16 bytes, LL128: 120 of 128).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.registry import Registry


@dataclass(frozen=True, slots=True, kw_only=True)
class Protocol:
    name: str
    base_latency_us: float
    step_latency_nvlink_us: float
    step_latency_net_us: float
    bandwidth_efficiency: float


PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _p in (
    Protocol(name="LL", base_latency_us=6.8, step_latency_nvlink_us=0.6, step_latency_net_us=2.7,
             bandwidth_efficiency=0.5),
    Protocol(name="LL128", base_latency_us=14.0, step_latency_nvlink_us=1.25, step_latency_net_us=4.0,
             bandwidth_efficiency=120 / 128),
    Protocol(name="Simple", base_latency_us=8.4, step_latency_nvlink_us=4.0, step_latency_net_us=8.0,
             bandwidth_efficiency=1.0),
):
    PROTOCOLS.add(_p.name, _p)
