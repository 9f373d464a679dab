"""Torch-free pieces every layer shares: the variant :class:`~common.registry.Registry`,
the one-line validation error format, and the rank <-> coordinator protocol's kinds.

It sits below ``interpose``, ``netsim``, ``profiles`` and ``phantora`` and imports none of
them, so netsim stays usable alone and the coordinator never pulls in torch.
"""
