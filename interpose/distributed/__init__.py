"""torch.distributed inside a simulated rank: the simulated ``nccl`` process group.

``install(sink)`` routes every c10d backend request to :class:`SimProcessGroup`; the
sink decides when collectives end (:class:`LocalSink`: at once; the coordinated sink:
as the coordinator answers).
"""

from interpose.distributed.backend import SimProcessGroup, SimWork, current_sink, install, uninstall
from interpose.distributed.sink import CollectiveSink, LocalSink

__all__ = ["CollectiveSink", "LocalSink", "SimProcessGroup", "SimWork", "current_sink", "install", "uninstall"]
