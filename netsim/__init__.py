"""netsim: network simulator for GPU clusters (flows, links, collectives). Never imports torch.

Entry points: :func:`netsim.backend.build_network` (the backend a cluster's ``network.backend``
names, behind the one :class:`netsim.backend.NetworkBackend` interface), :class:`netsim.engine.FlowNetwork`
(the incremental flow-level backend), :func:`netsim.engine.simulate_collectives` (batch),
:mod:`netsim.config` (the cluster / ``network:`` schema phantora's scenarios extend).
"""
