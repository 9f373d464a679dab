"""What ``phantora run``'s coordinator calls: build the scenario's network backend.

Takes any object with ``hosts``, ``gpus_per_host`` and ``network`` (a
:class:`netsim.config.NetworkConfig` or the equivalent dict), so netsim never imports phantora.
"""

from __future__ import annotations

from typing import Any

from netsim.backend import NetworkBackend
from netsim.config import NetworkConfig
from netsim.engine import FlowNetwork


def build_network(scenario: Any, *, hosts: int | None = None, gpus_per_host: int | None = None,
                  transport: str | None = None) -> NetworkBackend:
    """The network backend ``scenario.network.backend`` names (``hosts``/``gpus_per_host`` override
    the scenario's). ns-3 is imported only when asked for: its first import takes ~12 s."""
    net = getattr(scenario, "network", None)
    cfg = net if isinstance(net, NetworkConfig) else NetworkConfig.model_validate(net or {})
    n_hosts = int(hosts or getattr(scenario, "hosts", 1))
    n_gpus = int(gpus_per_host or getattr(scenario, "gpus_per_host", 1))
    if cfg.backend == "ns3":
        from netsim.ns3.backend import Ns3Network

        return Ns3Network.build(n_hosts, n_gpus, cfg, transport)
    return FlowNetwork.build(n_hosts, n_gpus, cfg, transport)
