"""Engine speed: a 1,024-GPU ring all-reduce and an ~8,192-flow all-to-all.

    python benchmarks/netsim_speed.py

Prints wall time, flows, events, rate recomputations, flows/s and events/s per case.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork


def case(name: str, hosts: int, gpus: int, kind: str, ranks: int, nbytes: int, transport: str,
         cfg: NetworkConfig) -> None:
    t0 = time.perf_counter()
    net = FlowNetwork.build(hosts, gpus, cfg, transport)
    h = net.submit_collective(kind, list(range(ranks)), nbytes, 0)
    net.run()
    wall = time.perf_counter() - t0
    s = net.stats
    sim_us = max(net.result(h).values()) / 1e3
    print(f"{name:<40} {transport:<15} flows={s.flows:<6} events={s.events:<6} recomputes={s.rate_recomputes:<5} "
          f"wall={wall:7.3f}s  flows/s={s.flows / wall:9.0f}  events/s={s.events / wall:9.0f}  sim={sim_us:.0f}us")


def random_p2p(n_flows: int = 8192, hosts: int = 128, gpus: int = 8, seed: int = 0) -> None:
    """Stress the event loop: independent send/recv flows with random sizes and start times,
    so nearly every completion is its own event and triggers a rate recomputation."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cfg = NetworkConfig()
    cfg.collectives.p2p_channels_per_peer = 1
    net = FlowNetwork.build(hosts, gpus, cfg, "single_path")
    t0 = time.perf_counter()
    n = hosts * gpus
    for _ in range(n_flows):
        s, d = rng.choice(n, 2, replace=False)
        net.submit_collective("send_recv", [int(s), int(d)], int(2 ** rng.uniform(20, 26)),
                              int(rng.integers(0, 1_000_000)))
    net.run()
    wall = time.perf_counter() - t0
    st = net.stats
    print(f"{'random send/recv, 1024 GPUs':<40} {'single_path':<15} flows={st.flows:<6} events={st.events:<6} "
          f"recomputes={st.rate_recomputes:<5} wall={wall:7.3f}s  flows/s={st.flows / wall:9.0f}  "
          f"events/s={st.events / wall:9.0f}  sim={net.now_ns / 1e3:.0f}us")
