"""Known values on the simulated GPU: data-dependent shapes and branches equal the real CPU result."""

from __future__ import annotations

import pytest
import torch

from interpose import interposed
from interpose.distributed import collective_values
from interpose.values import ValuePolicy


def _both(fn, *host_inputs):
    """``fn`` on CPU tensors and on their simulated-GPU copies (under the shim)."""
    want = fn(*host_inputs)
    got = fn(*(t.cuda() for t in host_inputs))
    return want, got


def _plain(x):
    if isinstance(x, torch.Tensor):
        return x.cpu().tolist()
    if isinstance(x, tuple | list):
        return [_plain(y) for y in x]
    return x


IDS = torch.tensor([[5, 0, 3, 3, 9, 0], [1, 1, 0, 7, 2, 2]])
MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])

FAMILIES = {
    "item_bool_tolist": lambda x: (x[0, 2].item(), bool(x[1, 0] == 1), x.tolist(), int(x.max())),
    "nonzero": lambda x: torch.nonzero(x),
    "where_cond": lambda x: torch.where(x > 2),
    "boolean_index": lambda x: x[x != 0],
    "masked_select": lambda x: x.masked_select(x > 1),
    "unique": lambda x: torch.unique(x, return_inverse=True, return_counts=True),
    "unique_consecutive": lambda x: torch.unique_consecutive(x.flatten()),
    "bincount": lambda x: torch.bincount(x.flatten(), minlength=3),
    "histc_split_sizes": lambda x: torch.histc(x.flatten().float(), bins=10, min=0, max=9).long().tolist(),
    "repeat_interleave": lambda x: torch.repeat_interleave(x[0], x[1]),
    "sort_topk_ints": lambda x: (torch.sort(x, dim=-1, stable=True), torch.topk(x * 10 + torch.arange(6, device=x.device), 2)),
    "cumsum_offsets": lambda x: torch.cumsum(torch.bincount(x.flatten(), minlength=10), 0, dtype=torch.int32),
    "inplace_and_views": lambda x: _mutate(x.clone()),
    "d2h_copy_into": lambda x: torch.empty(2, 6, dtype=torch.long).copy_(x),
}


def _mutate(y):
    y[0] += 5
    y[:, 1].fill_(-1)
    y[y == 3] = 30
    y.index_put_((torch.tensor([1]), torch.tensor([2])), torch.tensor(99))
    return y


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_data_dependent_family_matches_cpu(cfg, family):
    with interposed(cfg):
        want, got = _both(FAMILIES[family], IDS)
        assert _plain(got) == _plain(want)


def test_padding_mask_decisions_follow_the_mask(cfg):
    def decide(mask):
        lengths = mask.sum(-1)
        padded = bool((mask == 0).any())
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return lengths.tolist(), padded, positions.tolist(), bool(mask.all())

    with interposed(cfg):
        want, got = _both(decide, MASK)
        assert got == want and got[1] is True
        assert decide(torch.ones(2, 4, dtype=torch.long).cuda())[1] is False


def test_values_from_host_factories_and_copies(cfg):
    with interposed(cfg) as rt:
        assert torch.tensor(62, device="cuda").cpu().item() == 62  # DeepSpeed-style value check
        assert torch.full((3,), 7, device="cuda").tolist() == [7, 7, 7]
        assert torch.arange(4, device="cuda").sum().item() == 6
        dst = torch.zeros(4, dtype=torch.long, device="cuda")
        dst.copy_(torch.tensor([4, 3, 2, 1]))  # H2D into an existing tensor
        assert dst.tolist() == [4, 3, 2, 1]
        assert torch.tensor(0.5, device="cuda").item() == 0.5  # a small host float is known
        assert len(rt.values) > 0


def test_unknown_data_stays_unknown_and_overwrites_forget(cfg):
    with interposed(cfg):
        w = torch.randn(256, 256, device="cuda")  # over the small-float limit: unknown
        y = (w @ w).sum()
        assert y.item() == 0.0  # placeholder
        known = torch.tensor([1, 2, 3], device="cuda")
        known.copy_((w[0, :3] * 0).long())  # written from unknown data
        assert known.tolist() == [0, 0, 0]
        assert torch.isfinite(w).all().item() is True and torch.isnan(w).any().item() is False


def test_storage_cap_bounds_what_is_kept(cfg):
    cfg.values = ValuePolicy(cap_bytes=64)
    with interposed(cfg):
        small = torch.arange(8, device="cuda")  # 64 bytes: kept
        big = torch.arange(9, device="cuda")  # 72 bytes: over the cap
        assert small.sum().item() == 28 and big.sum().item() == 0


def test_cuda_random_factories_leave_the_cpu_stream_alone(cfg):
    with interposed(cfg):
        torch.manual_seed(0)
        a = torch.rand(3)
        torch.manual_seed(0)
        ids = torch.randint(0, 10, (100,), device="cuda")
        b = torch.rand(3)
        assert torch.equal(a, b)
        vals = ids.tolist()
        assert all(0 <= v < 10 for v in vals) and len(set(vals)) > 3  # real draws, not a placeholder


def _routing_counts(cfg, policy: str, tokens=512, experts=8, k=2):
    cfg.values = ValuePolicy.parse(policy, seed=3)
    with interposed(cfg):
        logits = torch.randn(tokens, experts, device="cuda", dtype=torch.bfloat16)  # unknown floats
        _, idx = torch.topk(torch.softmax(logits.float(), -1), k, dim=-1)
        assert all(len(set(row)) == k for row in idx.tolist())  # distinct experts per token
        return torch.bincount(idx.flatten(), minlength=experts).tolist()


def test_balanced_policy_gives_every_expert_tokens_k_over_e(cfg):
    assert _routing_counts(cfg, "balanced") == [512 * 2 // 8] * 8


def test_uniform_and_skewed_policies_are_seeded_and_differ(cfg):
    from conftest import h100_roofline_cfg

    uni = _routing_counts(cfg, "uniform")
    assert uni == _routing_counts(h100_roofline_cfg(), "uniform") and sum(uni) == 1024
    assert uni != [128] * 8
    skew = _routing_counts(h100_roofline_cfg(), "skewed:1.5")
    assert sum(skew) == 1024 and skew[0] == max(skew) and skew[0] > 2 * skew[-1]


def test_index_ops_on_unknown_floats_have_policy_values(cfg):
    with interposed(cfg):
        logits = torch.randn(4, 1000, device="cuda")
        nxt = logits.argmax(-1)
        assert len(set(nxt.tolist())) == 4 and all(0 <= t < 1000 for t in nxt.tolist())
        perm = torch.sort(logits, dim=-1).indices
        assert sorted(perm[0].tolist()) == list(range(1000))
        sample = torch.multinomial(torch.softmax(logits, -1), 1)
        assert sample.shape == (4, 1) and all(0 <= t < 1000 for t in sample.flatten().tolist())
        v, i = logits.max(dim=1)
        assert i.shape == (4,) and v.sum().item() == 0.0


def test_policy_parse_errors_name_the_valid_forms():
    assert ValuePolicy.parse("skewed:1.2").zipf_s == 1.2
    for bad in ("even", "skewed:x", "uniform:2", "skewed:-1"):
        with pytest.raises(ValueError, match=r"balanced, uniform or skewed|Zipf"):
            ValuePolicy.parse(bad)


def test_collectives_keep_known_values_symmetric(cfg):
    with interposed(cfg):
        counts = torch.tensor([3, 1], device="cuda")
        collective_values.all_reduce([counts], "sum", 4)
        assert counts.tolist() == [12, 4]
        out = torch.zeros(4, dtype=torch.long, device="cuda")
        collective_values.copy_into(out, torch.tensor([1, 2, 3, 4], device="cuda"))  # scatter: my chunk
        assert out.tolist() == [1, 2, 3, 4]
        collective_values.copy_into(out, torch.randn(400, device="cuda")[:4].long())  # from unknown data
        assert out.tolist() == [0, 0, 0, 0]


ROUTING_SCRIPT = """
import torch
logits = torch.randn(1024, 8, device="cuda")
idx = torch.topk(logits, 2, dim=-1).indices
print("COUNTS", torch.bincount(idx.flatten(), minlength=8).tolist())
"""


def _counts_from_cli(tmp_path, *opts: str) -> list[int]:
    import subprocess
    import sys

    script = tmp_path / "route.py"
    script.write_text(ROUTING_SCRIPT)
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    p = subprocess.run([sys.executable, "-m", "phantora", "run", *opts, "--out", str(out), str(script)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("COUNTS"))
    return eval(line.split(" ", 1)[1])


def test_value_policy_from_the_scenario_and_the_cli(tmp_path):
    assert _counts_from_cli(tmp_path) == [256] * 8  # balanced by default
    scen = tmp_path / "skew.yaml"
    scen.write_text("name: skew\ngpu: h100\nvalues:\n  policy: skewed:1.5\n  seed: 1\n")
    skewed = _counts_from_cli(tmp_path, "--scenario", str(scen))
    assert sum(skewed) == 2048 and skewed[0] == max(skewed) and skewed != [256] * 8
    assert _counts_from_cli(tmp_path, "--scenario", str(scen), "--values", "balanced") == [256] * 8
