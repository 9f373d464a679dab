"""The coordinator driving netsim's flow engine (contention, per-kind mapping)."""

from __future__ import annotations

import pytest

from common.protocol import CollectiveCall, Finished, Issue
from netsim.engine import FlowNetwork
from phantora.coordinator import Coordinator
from phantora.scenario import network_backend, scenario_from_dict


def scenario(hosts=2, gpus=2):
    return scenario_from_dict({"name": "t", "gpu": "h100", "hosts": hosts, "gpus_per_host": gpus})


def call(key, ranks, nbytes=64 << 20, kind="all_reduce"):
    return CollectiveCall(key=key, kind=kind, group=key.split("#")[0], ranks=ranks, nbytes=nbytes, dtype="float32")


def run(calls):
    net = network_backend(scenario())
    assert isinstance(net, FlowNetwork)
    c = Coordinator(4, net)
    for r in range(4):
        for h, cl in enumerate(x for x in calls if r in x.ranks):
            c.handle(Issue(r, h, cl, 0.0, 0.0))
    for r in range(4):
        c.handle(Finished(r, 0.0))
    return {row.key: row for row in c.rows}


def test_flow_engine_times_collectives_and_contention_slows_them():
    alone = run([call("a#0", (0, 2))])["a#0"]
    assert alone.end_us > alone.start_us and alone.transport
    both = run([call("a#0", (0, 2)), call("b#0", (1, 3))])
    assert both["a#0"].end_us >= alone.end_us, "two inter-host collectives share the fabric"


@pytest.mark.parametrize("kind", ["send", "barrier", "all_gather_object", "gather", "scatter"])
def test_every_c10d_kind_is_accepted(kind):
    rows = run([call("a#0", (0, 2), nbytes=1 << 16, kind=kind)])
    assert rows["a#0"].end_us >= rows["a#0"].start_us


def test_a_kind_the_backend_cannot_time_is_an_error_not_an_all_reduce():
    """A known kind a backend lacks raises; an unknown kind never gets that far (it once became an
    all-reduce): the call itself and the busbw rule refuse it."""
    from common.kinds import UnknownCollectiveKind
    from netsim.collectives import bus_factor
    from netsim.config import NetworkConfig
    from netsim.ns3.backend import Ns3Network
    from phantora.coordinator import CoordinatorError

    c = Coordinator(2, Ns3Network.build(2, 1, NetworkConfig(backend="ns3")))
    cl = CollectiveCall(key="g#0", kind="reduce_scatter", group="g", ranks=(0, 1), nbytes=1024, dtype="float32",
                        call_site="train.py:3")
    c.handle(Issue(0, 0, cl, 0.0, 0.0))
    with pytest.raises(CoordinatorError, match=r"^reduce_scatter at train\.py:3: the network backend \(Ns3Network\) "
                                               "cannot time this collective kind") as e:
        c.handle(Issue(1, 0, cl, 0.0, 0.0))
    assert e.value.kind == "network"
    with pytest.raises(UnknownCollectiveKind, match="unknown collective kind 'all_reduce_coalesced_v9'; valid: "):
        CollectiveCall(key="g#1", kind="all_reduce_coalesced_v9", group="g", ranks=(0, 1), nbytes=8, dtype="int8")
    with pytest.raises(UnknownCollectiveKind):
        bus_factor("allreduce", 4)
