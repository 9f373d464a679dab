"""Topologies: which links exist, their capacities, and the candidate paths between two GPUs.

One :class:`Topology` base, one module per variant, registered in :data:`TOPOLOGIES`
under the ``fabric.kind`` name a scenario uses.
"""

from netsim.topologies.base import Route, Topology, build_topology, TOPOLOGIES  # noqa: I001
from netsim.topologies import leaf_spine as _leaf_spine  # noqa: F401  (registers "leaf_spine")
from netsim.topologies import fat_tree as _fat_tree  # noqa: F401  (registers "fat_tree")

__all__ = ["TOPOLOGIES", "Route", "Topology", "build_topology"]
