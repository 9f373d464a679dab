"""``phantora profile`` of a script that makes gloo groups (as Megatron-Core does) besides its default group."""

from __future__ import annotations

import torch.distributed as dist
from click.testing import CliRunner

from phantora.commands.profile import profile
from profiles.store import read_profile

SCRIPT = """
import torch, torch.distributed as dist
dist.init_process_group('nccl')
g = dist.new_group([0, 1], backend='gloo')
assert g.size() == 2 and g.rank() == 0
assert dist.new_group([2, 3], backend='gloo') == dist.GroupMember.NON_GROUP_MEMBER
assert dist.new_group(backend='cpu:gloo,cuda:nccl').size() == 4
sub, _ = dist.new_subgroups(2, backend='gloo')
t = torch.ones(8)
dist.all_reduce(t, group=g)
dist.barrier(group=sub)
w = torch.randn(16, 16)
(torch.randn(4, 16) @ w).sum()
print('gloo groups ok')
"""


def test_gloo_groups_are_fake_while_profiling(tmp_path):
    script = tmp_path / "gloo.py"
    script.write_text(SCRIPT)
    out = tmp_path / "p.jsonl"
    args = ["--device", "cpu", "--gpu-name", "h100", "--out", str(out), "--world-size", "4", "--repeats", "2"]
    r = CliRunner().invoke(profile, [*args, str(script)])
    assert r.exit_code == 0, r.output
    assert "gloo groups ok" in r.output
    _, entries = read_profile(out)
    assert any(e.op == "aten.mm.default" for e in entries.values())
    # the patch is undone afterwards
    assert dist.distributed_c10d._new_process_group_helper.__name__ == "_new_process_group_helper"
    assert not dist.is_initialized()
