"""NCCL collectives decomposed into flows (rings, trees, pairwise), plus protocols and metrics.

``COLLECTIVES`` maps a kind (``all_reduce`` ...) to a decomposition function, ``ALGORITHMS`` an
all-reduce algorithm (``ring``, ``tree``) to one; :func:`bus_factor` is the one busbw rule;
``PROTOCOLS`` holds NCCL's LL / LL128 / Simple latency and efficiency parameters.
"""

from netsim.collectives.base import ALGORITHMS, COLLECTIVES, Plan, bus_factor, decompose  # noqa: I001
from netsim.collectives.protocols import PROTOCOLS, Protocol
from netsim.collectives import ring as _ring  # noqa: F401
from netsim.collectives import tree as _tree  # noqa: F401
from netsim.collectives import pairwise as _pairwise  # noqa: F401

__all__ = ["ALGORITHMS", "COLLECTIVES", "PROTOCOLS", "Plan", "Protocol", "bus_factor", "decompose"]
