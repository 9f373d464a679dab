"""The one list of collective kinds every layer speaks: ranks issue them, the coordinator matches
them, netsim and ns-3 time them, results tables name them.

A ``str`` enum, so a member *is* its wire / parquet string (``CollectiveKind.ALL_REDUCE ==
"all_reduce"``) and existing files and columns read the same. :meth:`CollectiveKind.parse` is
the single door for outside strings: an unknown kind raises :class:`UnknownCollectiveKind`
listing the valid ones (it once silently became an all-reduce).
"""

from __future__ import annotations

from enum import Enum


class UnknownCollectiveKind(ValueError):
    """A collective kind nobody defines; the message lists the valid kinds."""


class CollectiveKind(str, Enum):
    """What a rank can issue (first group), plus ``send_recv``: the network's name for a matched pair."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    BROADCAST = "broadcast"
    REDUCE = "reduce"
    ALL_TO_ALL = "all_to_all"
    BARRIER = "barrier"
    GATHER = "gather"
    SCATTER = "scatter"
    SEND = "send"
    RECV = "recv"
    ALL_GATHER_OBJECT = "all_gather_object"
    BROADCAST_OBJECT = "broadcast_object"
    GATHER_OBJECT = "gather_object"
    SCATTER_OBJECT = "scatter_object"
    SEND_RECV = "send_recv"
    """One send matched with its recv: what the network moves and the results table records."""

    def __str__(self) -> str:  # the plain value, on every Python (3.10's str-mixin enums differ)
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls, value: str | CollectiveKind) -> CollectiveKind:
        """``value`` as a kind, or :class:`UnknownCollectiveKind` naming the valid ones."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(k.value for k in cls)
            raise UnknownCollectiveKind(f"unknown collective kind {value!r}; valid: {valid}") from None

    @property
    def is_p2p(self) -> bool:
        """One side of (or a whole) point-to-point transfer."""
        return self in (CollectiveKind.SEND, CollectiveKind.RECV, CollectiveKind.SEND_RECV)

    @property
    def is_object(self) -> bool:
        """A pickled-object collective (``*_object``): sizes differ per rank, payloads cross ranks."""
        return self.value.endswith("_object")

    @property
    def network_kind(self) -> CollectiveKind:
        """The collective the network times for this kind: a send or recv is half of ``send_recv``;
        object collectives move their pickles as the tensor collective torch builds them on."""
        return _NETWORK_KIND.get(self, self)


_NETWORK_KIND = {
    CollectiveKind.SEND: CollectiveKind.SEND_RECV,
    CollectiveKind.RECV: CollectiveKind.SEND_RECV,
    CollectiveKind.ALL_GATHER_OBJECT: CollectiveKind.ALL_GATHER,
    CollectiveKind.GATHER_OBJECT: CollectiveKind.ALL_GATHER,
    CollectiveKind.BROADCAST_OBJECT: CollectiveKind.BROADCAST,
    CollectiveKind.SCATTER_OBJECT: CollectiveKind.BROADCAST,
}

__all__ = ["CollectiveKind", "UnknownCollectiveKind"]
