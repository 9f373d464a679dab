"""Object collectives (``all_gather_object``, ``broadcast_object_list``, ``gather_object``,
``scatter_object_list``, ``send_object_list``/``recv_object_list``) for the simulated backend.

c10d implements them by pickling into byte tensors on the group's device and reading sizes
back with ``.item()``; on fake cuda tensors there are no bytes to read. Here the pickles
travel through the coordinator instead (the only real data that crosses ranks), and the
call is timed like a collective of that many bytes. Values are exact; time is modelled.
"""

from __future__ import annotations

import pickle
from typing import Any

import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

from common.kinds import CollectiveKind


def _group(group: Any) -> Any:
    return group if group is not None else c10d._get_default_group()


def _exchange(kind: CollectiveKind, obj: Any, group: Any, root: int = -1) -> list[Any]:
    """Pickle ``obj`` (None: send nothing), exchange within ``group``; return members' objects."""
    pg = _group(group)
    data = None if obj is None else pickle.dumps(obj)
    payloads = pg.exchange(kind, data, root)
    return [None if p is None else pickle.loads(p) for p in payloads]


def _group_root(group: Any, src: int | None, group_src: int | None) -> int:
    """Group rank of a root given as a global (``src``) or group rank (``group_src``)."""
    if group_src is not None:
        return group_src
    pg = _group(group)
    return dist.get_group_rank(pg, src if src is not None else 0) if group is not None else (src or 0)


def all_gather_object(object_list: list, obj: Any, group: Any = None) -> None:
    object_list[:] = _exchange(CollectiveKind.ALL_GATHER_OBJECT, obj, group)


def broadcast_object_list(object_list: list, src: int | None = None, group: Any = None, device: Any = None,
                          group_src: int | None = None) -> None:
    root = _group_root(group, src, group_src)
    me = dist.get_rank(_group(group))
    got = _exchange(CollectiveKind.BROADCAST_OBJECT, list(object_list) if me == root else None, group, root)
    object_list[:] = got[root]


def gather_object(obj: Any, object_gather_list: list | None = None, dst: int | None = None, group: Any = None,
                  group_dst: int | None = None) -> None:
    root = _group_root(group, dst, group_dst)
    got = _exchange(CollectiveKind.GATHER_OBJECT, obj, group, root)
    if dist.get_rank(_group(group)) == root and object_gather_list is not None:
        object_gather_list[:] = got


def scatter_object_list(scatter_object_output_list: list, scatter_object_input_list: list | None = None,
                        src: int | None = None, group: Any = None, group_src: int | None = None) -> None:
    root = _group_root(group, src, group_src)
    me = dist.get_rank(_group(group))
    got = _exchange(CollectiveKind.SCATTER_OBJECT, list(scatter_object_input_list or []) if me == root else None, group, root)
    scatter_object_output_list[0] = got[root][me]


def _peer(group: Any, peer: int | None, group_peer: int | None, what: str) -> int:
    if group_peer is None and peer is None:
        raise ValueError(f"{what}: a peer rank is required (receiving from any source is not simulated)")
    return _group_root(group, peer, group_peer)


def send_object_list(object_list: list, dst: int | None = None, group: Any = None, device: Any = None,
                     group_dst: int | None = None, use_batch: bool = False) -> None:
    peer = _peer(group, dst, group_dst, "send_object_list")
    _group(group).exchange_p2p(CollectiveKind.SEND, pickle.dumps(list(object_list)), peer)


def recv_object_list(object_list: list, src: int | None = None, group: Any = None, device: Any = None,
                     group_src: int | None = None, use_batch: bool = False) -> int:
    peer = _peer(group, src, group_src, "recv_object_list")
    data = _group(group).exchange_p2p(CollectiveKind.RECV, None, peer)
    got = pickle.loads(data) if data is not None else []
    object_list[: len(got)] = got
    ranks = dist.get_process_group_ranks(_group(group))
    return ranks[peer]


PATCHED = {
    "send_object_list": send_object_list,
    "recv_object_list": recv_object_list,
    "all_gather_object": all_gather_object,
    "broadcast_object_list": broadcast_object_list,
    "gather_object": gather_object,
    "scatter_object_list": scatter_object_list,
}
