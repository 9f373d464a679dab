"""The coordinator: one process that owns simulated time for a multi-rank run.

``core.Coordinator`` is the pure state machine (matching, conservative time advance,
mismatch/deadlock detection); ``network`` holds the network-timer interface it drives;
``server`` runs it over the ranks' pipes.
"""

from phantora.coordinator.core import CollectiveRow, Coordinator, CoordinatorError
from phantora.coordinator.network import NETWORK_TIMERS, AlphaBetaTimer, Completion, NetworkTimer

__all__ = ["NETWORK_TIMERS", "AlphaBetaTimer", "CollectiveRow", "Completion", "Coordinator",
           "CoordinatorError", "NetworkTimer"]
