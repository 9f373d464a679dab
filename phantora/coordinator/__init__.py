"""The coordinator: one process that owns simulated time for a multi-rank run.

``core.Coordinator`` is the pure state machine (matching, conservative time advance,
mismatch/deadlock detection); it drives any :class:`netsim.backend.NetworkBackend` (the
scenario's, from ``netsim.backend.build_network``); ``server`` runs it over the ranks' pipes.
"""

from netsim.alpha_beta import AlphaBetaNetwork
from phantora.coordinator.calls import CollectiveRow
from phantora.coordinator.core import Coordinator, CoordinatorError

__all__ = ["AlphaBetaNetwork", "CollectiveRow", "Coordinator", "CoordinatorError"]
