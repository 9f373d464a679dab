"""Packet-level network backend on the real ns-3 simulator (issue 6).

Importing this package is cheap: ``from ns import ns`` (~12 s) happens only inside
:mod:`netsim.ns3.runner` when a scenario is actually simulated, so the flow-level
paths never pay for it. See ``netsim/ns3/README.md``.
"""

from __future__ import annotations

import importlib.util

from netsim.ns3.spec import FabricSpec, FlowResult, PacketFlow, TransportSpec


def ns3_available() -> bool:
    """True when the ns-3 Python bindings are installed (checked without importing them)."""
    return importlib.util.find_spec("ns") is not None


__all__ = ["FabricSpec", "FlowResult", "PacketFlow", "TransportSpec", "ns3_available"]
