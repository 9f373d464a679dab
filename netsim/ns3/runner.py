"""Run a set of flows on an ns-3 leaf-spine fabric and return per-flow completion times.

This is the only module that imports ns-3. :func:`simulate` runs in the calling process
(ns-3's simulator is a process-wide singleton, so it destroys it before returning);
:func:`simulate_in_subprocess` runs the same thing in a fresh interpreter, which keeps
the ~12 s import and ns-3's global state out of the caller.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from netsim.ns3.spec import FabricSpec, FlowResult, PacketFlow, PacketRun, TransportSpec

_DRIVER_CPP = Path(__file__).with_name("driver.cpp")
_TCP_TYPES = {
    # ns-3's DCTCP with a window floor (driver.cpp: FlooredDctcp); the bare one can stall a queue pair
    "dctcp": "phantora_ns3::FlooredDctcp",
    "dctcp-unfloored": "ns3::TcpDctcp",
    "newreno": "ns3::TcpNewReno",
    "cubic": "ns3::TcpCubic",
}
_IP_TCP_HEADER_BYTES = 20 + 20 + 12  # IPv4 + TCP + timestamp option


class Ns3Error(RuntimeError):
    """The packet-level simulation could not complete (flows stuck, bad input, worker died)."""


@cache
def _ns() -> Any:
    """Import ns-3 and JIT the flow driver once per process."""
    import cppyy
    from ns import ns  # ~12 s the first time

    cppyy.cppdef(_DRIVER_CPP.read_text())
    cppyy.gbl.phantora_ns3.FlooredDctcp.GetTypeId()  # register it so SocketType can name it
    return ns


def tcp_segment_bytes(mtu_bytes: int) -> int:
    """Payload per full-size packet (what the flow engine's protocol efficiency must match)."""
    return mtu_bytes - _IP_TCP_HEADER_BYTES


def _configure_tcp(ns: Any, fabric: FabricSpec, transport: TransportSpec) -> None:
    try:
        tcp_type = _TCP_TYPES[transport.congestion_control]
    except KeyError:
        valid = ", ".join(sorted(_TCP_TYPES))
        raise Ns3Error(
            f"transport.congestion_control: unknown {transport.congestion_control!r}; valid: {valid}"
        ) from None
    sd = ns.Config.SetDefault
    sd("ns3::TcpL4Protocol::SocketType", ns.StringValue(tcp_type))
    sd("phantora_ns3::FlooredDctcp::MinCwndSegments", ns.UintegerValue(transport.min_cwnd_segments))
    sd("ns3::TcpSocket::SegmentSize", ns.UintegerValue(tcp_segment_bytes(fabric.mtu_bytes)))
    sd("ns3::TcpSocket::SndBufSize", ns.UintegerValue(transport.snd_buf_bytes))
    sd("ns3::TcpSocket::RcvBufSize", ns.UintegerValue(transport.rcv_buf_bytes))
    sd("ns3::TcpSocket::InitialCwnd", ns.UintegerValue(transport.initial_cwnd_segments))
    sd("ns3::TcpSocket::DelAckCount", ns.UintegerValue(transport.delayed_ack_count))
    sd("ns3::TcpSocketBase::MinRto", ns.TimeValue(ns.MicroSeconds(transport.min_rto_us)))
    sd("ns3::TcpSocketBase::ClockGranularity", ns.TimeValue(ns.MicroSeconds(1)))
    sd("ns3::TcpSocketBase::UseEcn", ns.StringValue("On" if fabric.use_ecn else "Off"))


def _validate(fabric: FabricSpec, flows: Sequence[PacketFlow]) -> None:
    if fabric.n_hosts < 1 or fabric.hosts_per_leaf < 1 or fabric.n_spines < 1:
        raise Ns3Error("fabric: n_hosts, hosts_per_leaf and n_spines must be >= 1")
    ids = {f.flow_id for f in flows}
    if len(ids) != len(flows):
        raise Ns3Error("flows: flow_id values must be unique")
    for f in flows:
        for h in (f.src_host, f.dst_host):
            if not 0 <= h < fabric.n_hosts:
                raise Ns3Error(f"flow {f.flow_id}: host {h} outside 0..{fabric.n_hosts - 1}")
        if f.src_host == f.dst_host and f.size_bytes > 0:
            raise Ns3Error(f"flow {f.flow_id}: src_host == dst_host; intra-host traffic is not on the fabric")
        if f.delay_ns < 0:
            raise Ns3Error(f"flow {f.flow_id}: delay_ns must be >= 0")
        if not f.spines:
            raise Ns3Error(f"flow {f.flow_id}: spines must name at least one path")
        missing = [d for d in f.deps if d not in ids]
        if missing:
            raise Ns3Error(f"flow {f.flow_id}: deps {missing} are not flows of this run")


def simulate(
    fabric: FabricSpec,
    transport: TransportSpec,
    flows: Sequence[PacketFlow],
    stop_ns: int = 10_000_000_000,
    warmup_ns: int = 1_000_000,
) -> PacketRun:
    """Simulate ``flows`` packet by packet; per-flow results are in the order of ``flows``.

    Every queue pair connects during a warm-up of ``warmup_ns`` before time 0 (NCCL sets
    up its connections at communicator creation), so reported times exclude handshakes.
    """
    _validate(fabric, flows)
    t0 = time.perf_counter()
    ns = _ns()
    import cppyy

    _configure_tcp(ns, fabric, transport)
    driver = cppyy.gbl.phantora_ns3.FlowDriver()
    try:
        driver.BuildLeafSpine(
            fabric.n_hosts, fabric.hosts_per_leaf, fabric.n_spines, float(fabric.nic_gbps),
            float(fabric.uplink_gbps), fabric.hop_latency_ns, fabric.mtu_bytes, fabric.queue_packets,
            fabric.ecn_min_packets, fabric.ecn_max_packets, fabric.use_ecn,
        )  # fmt: skip
        driver.SetTransport(transport.chunk_bytes, transport.claim_below_bytes, transport.snd_buf_bytes)
        index: dict[int, int] = {}
        for f in flows:
            index[f.flow_id] = driver.AddFlow(f.src_host, f.dst_host, f.size_bytes, f.start_ns, f.delay_ns)
            for s in f.spines:
                driver.AddPath(index[f.flow_id], f.qp, s % fabric.n_spines)
        for f in flows:
            for d in f.deps:
                driver.AddDependency(index[f.flow_id], index[d])
        unfinished = driver.Run(warmup_ns, stop_ns)
        if unfinished < 0:
            raise Ns3Error(f"queue pairs did not connect within the {warmup_ns} ns warm-up")
        if unfinished:
            raise Ns3Error(
                f"{unfinished} of {len(flows)} flows did not finish within {stop_ns} ns"
                f" ({int(driver.Drops())} packets dropped)"
            )
        results = [
            FlowResult(f.flow_id, int(driver.StartedNs(index[f.flow_id])), int(driver.FinishedNs(index[f.flow_id])))
            for f in flows
        ]
        return PacketRun(results, int(driver.Drops()), time.perf_counter() - t0)
    finally:
        ns.Simulator.Destroy()


def simulate_in_subprocess(
    fabric: FabricSpec,
    transport: TransportSpec,
    flows: Sequence[PacketFlow],
    stop_ns: int = 10_000_000_000,
    timeout_s: float | None = 3600,
) -> PacketRun:
    """Like :func:`simulate`, but in a fresh ``python -m netsim.ns3.worker`` process."""
    request = {
        "fabric": asdict(fabric),
        "transport": asdict(transport),
        "flows": [f.to_json() for f in flows],
        "stop_ns": stop_ns,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "netsim.ns3.worker"],
        input=json.dumps(request), capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    reply = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0 or "results" not in reply:
        detail = reply.get("error") or proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise Ns3Error(f"ns-3 worker failed: {detail}")
    return PacketRun([FlowResult(*r) for r in reply["results"]], int(reply["drops"]), float(reply["wall_s"]))
