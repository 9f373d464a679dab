"""torch.distributed inside a simulated rank: the simulated ``nccl`` process group.

``install(sink)`` routes every c10d backend request to :class:`SimProcessGroup`
(:mod:`~interpose.distributed.c10d_patches`); the sink decides when collectives end
(:class:`LocalSink`: at once; the coordinated sink: as the coordinator answers).
"""

from interpose.distributed.c10d_patches import current_sink, install, uninstall
from interpose.distributed.process_group import SimProcessGroup, SimWork
from interpose.distributed.sink import CollectiveSink, LocalSink

__all__ = ["CollectiveSink", "LocalSink", "SimProcessGroup", "SimWork", "current_sink", "install", "uninstall"]
