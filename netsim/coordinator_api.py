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
    """The flow engine for ``scenario`` (``hosts``/``gpus_per_host`` override the scenario's)."""
    net = getattr(scenario, "network", None)
    cfg = net if isinstance(net, NetworkConfig) else NetworkConfig.model_validate(net or {})
    if cfg.backend != "flow":
        raise ValueError(f"network.backend {cfg.backend!r} is not available in the flow engine")
    return FlowNetwork.build(int(hosts or getattr(scenario, "hosts", 1)),
                             int(gpus_per_host or getattr(scenario, "gpus_per_host", 1)), cfg, transport)
