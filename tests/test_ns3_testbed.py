"""The UCCL testbed flow set for ns-3 (netsim/ns3/testbed.py), checked without importing ns-3."""

from __future__ import annotations

from collections import Counter

from netsim.ns3.testbed import CHANNELS, HOSTS, NICS, uccl_testbed_all_reduce, uccl_testbed_fabric


def test_shape_and_dependencies():
    flows = uccl_testbed_all_reduce(48 * 16 * 1000, multipath=False, seed=0, scale=16)
    steps = 2 * (HOSTS * NICS - 1)
    assert len(flows) == CHANNELS * HOSTS * steps
    assert {f.size_bytes for f in flows} == {1000}
    by_id = {f.flow_id: f for f in flows}
    for f in flows:
        assert len(f.deps) <= 1
        for d in f.deps:  # the previous host's exit, one NVLink block (8 ring steps) earlier
            assert by_id[d].qp == f.qp and by_id[d].dst_host // NICS == f.src_host // NICS
    # every NIC sends for exactly two channels, and each channel crosses hosts 6 times
    senders = Counter((f.src_host, f.qp) for f in flows)
    assert Counter(s for s, _ in senders) == {n: 2 for n in range(HOSTS * NICS)}


def test_single_path_pins_one_spine_and_multipath_sprays():
    single = uccl_testbed_all_reduce(1 << 20, multipath=False, seed=3, scale=16)
    multi = uccl_testbed_all_reduce(1 << 20, multipath=True, seed=3, scale=16)
    assert all(len(f.spines) == 1 for f in single)
    assert all(f.spines == tuple(range(24)) for f in multi)
    # a connection keeps its path for every step (NCCL's QPs are persistent)
    per_conn = {(f.src_host, f.dst_host, f.qp): f.spines for f in single}
    assert all(per_conn[(f.src_host, f.dst_host, f.qp)] == f.spines for f in single)
    fab = uccl_testbed_fabric(16)
    assert fab.n_hosts == 48 and fab.hosts_per_leaf == 24 and fab.n_leaves == 2
