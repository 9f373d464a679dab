"""Transports: how one connection's bytes are spread over a route's equal-cost paths.

Base class and registry in :mod:`netsim.transports.base`; one module per variant.
"""

from netsim.transports.base import TRANSPORTS, Transport, build_transport  # noqa: I001
from netsim.transports import single_path as _single_path  # noqa: F401
from netsim.transports import uccl_multipath as _uccl_multipath  # noqa: F401
from netsim.transports import ideal as _ideal  # noqa: F401
from netsim.transports import ethereal as _ethereal  # noqa: F401

__all__ = ["TRANSPORTS", "Transport", "build_transport"]
