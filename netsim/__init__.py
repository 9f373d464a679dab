"""netsim: network simulator for GPU clusters (flows, links, collectives). Never imports torch."""
