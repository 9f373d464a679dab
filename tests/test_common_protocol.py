"""The rank <-> coordinator protocol is torch-free and typed: kinds are CollectiveKind members."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from common.kinds import CollectiveKind, UnknownCollectiveKind
from common.protocol import (
    OBJECT_DTYPE,
    CollectiveCall,
    FailureKind,
    Finished,
    Hello,
    Issue,
    Progress,
    RankStatus,
    message_time_us,
)


@pytest.mark.parametrize("module", ["common.protocol", "phantora.coordinator", "phantora.coordinator.server"])
def test_importing_the_protocol_and_the_coordinator_does_not_import_torch(module):
    code = f"import sys, {module}; bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} pulled in {out.strip()}"


def test_a_call_kind_is_a_collective_kind_on_both_ends():
    call = CollectiveCall(key="g#0", kind="all_reduce", group="g", ranks=(0, 1), nbytes=8, dtype="float32")
    assert call.kind is CollectiveKind.ALL_REDUCE and call.kind == "all_reduce"
    back = pickle.loads(pickle.dumps(Issue(0, 0, call, 1.0, 1.0)))
    assert back.call.kind is CollectiveKind.ALL_REDUCE
    with pytest.raises(UnknownCollectiveKind, match="valid: all_reduce"):
        CollectiveCall(key="g#1", kind="allreduce", group="g", ranks=(0,), nbytes=8, dtype="float32")


def test_statuses_are_str_enums_with_the_old_values():
    assert RankStatus.BLOCKED == "blocked" and f"{RankStatus.DONE}" == "done"
    assert RankStatus.RUNNING.live and not RankStatus.FAILED.live
    assert {k.value for k in FailureKind} >= {"rank_failed", "mismatch", "deadlock", "unmatched", "not_symmetric",
                                             "network", "timeout"}
    assert OBJECT_DTYPE == "object"


def test_message_time_is_the_clock_a_rank_reports():
    call = CollectiveCall(key="g#0", kind=CollectiveKind.BARRIER, group="g", ranks=(0,), nbytes=4, dtype="")
    assert message_time_us(Issue(0, 0, call, host_us=3.0, ready_us=9.0)) == 3.0
    assert message_time_us(Progress(0, 5.0)) == 5.0
    assert message_time_us(Finished(0, 7.0)) == 7.0
    assert message_time_us(Hello(0, 123)) == 0.0
