"""netsim: network simulator for GPU clusters (flows, links, collectives). Never imports torch.

Entry points: :class:`netsim.engine.FlowNetwork` (the incremental flow-level backend),
:func:`netsim.engine.simulate_collectives` (batch), :mod:`netsim.config` (scenario schema),
:mod:`netsim.coordinator_api` (what ``phantora run`` calls).
"""
