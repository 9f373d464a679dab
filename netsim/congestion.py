"""Congestion control in the flow engine: how fast colliding single-path flows settle.

The max-min engine alone gives every flow its fair share the instant a collision forms, so a
collision costs exactly the fair split and nothing more. A real RoCE NIC runs DCQCN per queue
pair: senders start at line rate, a switch queue that builds past ``K_min`` marks packets with
ECN, the receiver returns CNPs, and the sender cuts its rate multiplicatively and then recovers
it by byte-counter and timer events. While that loop settles the bottleneck is over- or
under-driven. This module integrates the DCQCN fluid model of Zhu et al., "Congestion Control for
Large-Scale RDMA Deployments" (SIGCOMM 2015, section 5, equations for ``q``, ``p``, ``alpha``,
``R_T``, ``R_C``) for every flow that crosses a switch egress link, with the NIC's default
parameters (:class:`DcqcnParams`, each with its source).

How it plugs into the engine (:class:`netsim.engine.FlowNetwork`): when a transport's
``congestion`` option names a model here, switch egress links stop constraining max-min (their
overload goes into a queue instead) and each controlled flow is capped at its DCQCN rate
``R_C``; every ``tick_ns`` the engine calls :meth:`Dcqcn.step`, which advances queues and
sender state over the elapsed time in ``substep_ns`` Euler steps, and re-rates. A flow's last
byte also waits for the queues on its path (``queue_delay_ns``).

Simplifications, stated: one DCQCN state per engine flow (a ring channel is one flow, so the
hop that is marked slows the whole ring, as a lockstep ring pipeline is slowed by its slowest
hop); no feedback delay (the RTT, ~5 us here, is below the CNP interval's order); no PFC (a queue
past ``K_max`` marks every packet, which empties it within a few CNP intervals); hyper-increase
omitted, as in the paper's fluid model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from common.registry import Registry


@dataclass(frozen=True, slots=True, kw_only=True)
class DcqcnParams:
    """DCQCN constants. NIC side: NVIDIA ConnectX defaults (``mlxconfig`` ``ROCE_CC`` fields, the
    values shipped with ConnectX-6/7 firmware); switch side: the ECN marking HPCC's public ns-3
    DCQCN setup uses (alibaba-edu/High-Precision-Congestion-Control, ``mix/config.txt``: 400 KB /
    1600 KB / 0.2 at 100 Gb/s, scaled with link rate)."""

    mtu_bytes: int = 4096
    """RoCE MTU NCCL runs with (the port's active MTU, 4096 on these fabrics); the fluid model counts packets."""
    cnp_interval_ns: float = 4_000.0
    """tau: at most one rate cut per interval (RATE_REDUCE_MONITOR_PERIOD = 4 us; MIN_TIME_BETWEEN_CNPS = 4 us)."""
    alpha_interval_ns: float = 1_000.0
    """tau': alpha update period (DCE_TCP_RTT = 1 us)."""
    g: float = 5 / 1024
    """alpha EWMA gain (DCE_TCP_G = 1019: the new sample weighs (1024 - 1019) / 1024)."""
    alpha0: float = 1023 / 1024
    """Initial alpha (INITIAL_ALPHA_VALUE = 1023 of 1024)."""
    byte_counter_bytes: float = 32767.0
    """B: a rate-increase event per B bytes sent without a cut (RPG_BYTE_RESET = 32767)."""
    timer_ns: float = 300_000.0
    """T: a rate-increase event per T without a cut (RPG_TIME_RESET = 300 us)."""
    fast_recovery: int = 1
    """F: increase events before the target rate grows (RPG_THRESHOLD = 1)."""
    clamp_target: bool = False
    """Set the target rate to the current rate on a cut, as the paper's model does (CLAMP_TGT_RATE = 0:
    ConnectX keeps the target, so fast recovery climbs back to it; CLAMP_TGT_RATE_AFTER_TIME_INC = 1
    clamps only after a timer-driven increase, rare here since a 32 KB byte-counter event comes every
    ~1 us at these rates, so it is not modelled)."""
    ai_gbps: float = 5e6 / 8e9
    """R_AI: additive increase of the target (RPG_AI_RATE = 5 Mb/s), in GB/s."""
    min_gbps: float = 1e6 / 8e9
    """Floor of a cut rate (RPG_MIN_RATE = 1 Mb/s), in GB/s."""
    kmin_bytes_per_gbit: float = 4_000.0
    """ECN K_min per Gb/s of link rate (HPCC's setup: 400 KB at 100 Gb/s)."""
    kmax_bytes_per_gbit: float = 16_000.0
    """ECN K_max per Gb/s of link rate (1600 KB at 100 Gb/s)."""
    pmax: float = 0.2
    """Marking probability at K_max (HPCC's PMAX_MAP 0.2); every packet is marked above K_max."""


class Dcqcn:
    """DCQCN fluid state for the controlled flows of one engine, indexed by engine slot.

    ``step`` is vectorised over flows and links; the engine owns slot order and compaction
    (it calls :meth:`admit`, :meth:`compact`) and reads :attr:`rc` as the flows' rate caps.
    """

    name = "dcqcn"

    def __init__(self, capacity_gbps: np.ndarray, switch_links: np.ndarray, line_gbps: float, *,
                 tick_ns: int = 5_000, substep_ns: int = 500, **params: Any) -> None:
        known = {f.name for f in fields(DcqcnParams)}
        bad = sorted(set(params) - known)
        if bad:
            raise ValueError(f"dcqcn: unknown option(s) {bad}; valid: {sorted(known | {'tick_ns', 'substep_ns'})}")
        if tick_ns <= 0 or substep_ns <= 0:
            raise ValueError("dcqcn: tick_ns and substep_ns must be > 0")
        self.p = DcqcnParams(**params)
        self.tick_ns, self.substep_ns = int(tick_ns), int(substep_ns)
        self.capacity = capacity_gbps.astype(float)
        self.switch = switch_links.astype(bool)
        gbit = self.capacity * 8.0
        self.kmin = self.p.kmin_bytes_per_gbit * gbit
        self.kmax = self.p.kmax_bytes_per_gbit * gbit
        self.line = float(line_gbps)
        self.queue = np.zeros(len(self.capacity))
        self.queue_peak = np.zeros(len(self.capacity))
        """Largest queue each link held so far (bytes), for checks and reports."""
        self.rc = np.zeros(0)
        self.rt = np.zeros(0)
        self.alpha = np.zeros(0)
        self.on = np.zeros(0, dtype=bool)

    def admit(self, controlled: np.ndarray) -> None:
        """New slots at the end: controlled ones start at line rate (DCQCN's start), others free."""
        n = len(controlled)
        self.rc = np.concatenate([self.rc, np.where(controlled, self.line, np.inf)])
        self.rt = np.concatenate([self.rt, np.full(n, self.line)])
        self.alpha = np.concatenate([self.alpha, np.full(n, self.p.alpha0)])
        self.on = np.concatenate([self.on, controlled])

    def compact(self, keep: np.ndarray) -> None:
        self.rc, self.rt, self.alpha, self.on = self.rc[keep], self.rt[keep], self.alpha[keep], self.on[keep]

    def mark_probability(self) -> np.ndarray:
        """RED marking per link from its queue (0 below K_min, P_max at K_max, 1 above)."""
        q = self.queue
        with np.errstate(divide="ignore", invalid="ignore"):
            ramp = np.where(q > self.kmin, (q - self.kmin) / (self.kmax - self.kmin) * self.p.pmax, 0.0)
        return np.where(q > self.kmax, 1.0, ramp) * self.switch

    def step(self, dt_ns: float, rates: np.ndarray, alive: np.ndarray, e_flow: np.ndarray,
             e_link: np.ndarray, e_w: np.ndarray) -> None:
        """Advance queues and sender state by ``dt_ns`` with the flows sending at ``min(rates, R_C)``."""
        p = self.p
        ctl = alive & self.on
        if not ctl.any() or dt_ns <= 0:
            return
        sel = alive[e_flow] & self.switch[e_link]
        ef, el, ew = e_flow[sel], e_link[sel], e_w[sel]
        idx = np.flatnonzero(ctl)
        upper = np.where(np.isfinite(rates), rates, self.line)
        n_sub = max(1, round(dt_ns / self.substep_ns))
        h = dt_ns / n_sub
        mtu = p.mtu_bytes
        for _ in range(n_sub):
            send = np.minimum(upper, self.rc)  # bytes/ns; engine rate already honours R_C
            arrival = np.bincount(el, weights=send[ef] * ew, minlength=len(self.capacity))
            self.queue = np.maximum(0.0, self.queue + (arrival - self.capacity) * h) * self.switch
            np.maximum(self.queue_peak, self.queue, out=self.queue_peak)
            pl = self.mark_probability()
            # a flow is marked if any of its switch links marks: 1 - prod(1 - p_l)
            log_ok = np.bincount(ef, weights=np.log1p(-np.minimum(pl[el], 1 - 1e-12)), minlength=len(rates))
            pf = -np.expm1(log_ok[idx])
            rc, rt, al = self.rc[idx], self.rt[idx], self.alpha[idx]
            pkts_per_ns = send[idx] / mtu
            miss = np.log1p(-np.minimum(pf, 1 - 1e-12))  # log(1 - p)
            cut = -np.expm1(p.cnp_interval_ns * pkts_per_ns * miss)  # P(>= 1 mark in tau)
            mark_a = -np.expm1(p.alpha_interval_ns * pkts_per_ns * miss)
            b_pk, t_pk = p.byte_counter_bytes / mtu, p.timer_ns * pkts_per_ns
            # expected increase events per ns: byte counter and timer (-> R/B and 1/T as p -> 0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ev_b = np.where(pf > 1e-12, pkts_per_ns * pf / np.expm1(-b_pk * miss), pkts_per_ns / b_pk)
                ev_t = np.where(pf > 1e-12, pkts_per_ns * pf / np.expm1(-t_pk * miss), 1.0 / p.timer_ns)
            grow = np.exp(p.fast_recovery * b_pk * miss) * ev_b + np.exp(p.fast_recovery * t_pk * miss) * ev_t
            d_al = p.g / p.alpha_interval_ns * (mark_a - al)
            d_rt = p.ai_gbps * grow - ((rt - rc) / p.cnp_interval_ns * cut if p.clamp_target else 0.0)
            d_rc = -rc * al / (2 * p.cnp_interval_ns) * cut + (rt - rc) / 2 * (ev_b + ev_t)
            self.alpha[idx] = np.clip(al + h * d_al, 0.0, 1.0)
            self.rt[idx] = np.clip(rt + h * d_rt, p.min_gbps, self.line)
            self.rc[idx] = np.clip(rc + h * d_rc, p.min_gbps, self.rt[idx])

    def queue_delay_ns(self, links: np.ndarray) -> int:
        """What the last byte of a flow over ``links`` waits in their queues."""
        if not len(links):
            return 0
        return round(float((self.queue[links] / self.capacity[links]).sum()))


CONGESTION: Registry[type[Dcqcn] | None] = Registry("congestion model")
"""``transport.options.congestion``: ``none`` (max-min at once, the default) or ``dcqcn``."""
CONGESTION.add("none", None)
CONGESTION.add("dcqcn", Dcqcn)
