"""The coordinator driving netsim's flow engine (contention, per-kind mapping)."""

from __future__ import annotations

import pytest

from interpose.protocol import CollectiveCall, Finished, Issue
from phantora.coordinator import Coordinator
from phantora.coordinator.netsim_timer import NetsimTimer, build
from phantora.scenario import scenario_from_dict


def scenario(hosts=2, gpus=2):
    return scenario_from_dict({"name": "t", "gpu": "h100", "hosts": hosts, "gpus_per_host": gpus})


def call(key, ranks, nbytes=64 << 20, kind="all_reduce"):
    return CollectiveCall(key=key, kind=kind, group=key.split("#")[0], ranks=ranks, nbytes=nbytes, dtype="float32")


def run(calls):
    timer = build(scenario(), 2)
    assert isinstance(timer, NetsimTimer)
    c = Coordinator(4, timer)
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
