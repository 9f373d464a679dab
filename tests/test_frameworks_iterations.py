"""Iteration detection in the patterns frameworks use (issue 20): several optimizers (a GAN's
alternating steps, a 5:1 critic schedule, a chain that is not an Optimizer, as Megatron's
ChainedOptimizer), gradient accumulation, and an irregular pattern, which is labelled."""

from __future__ import annotations

import torch
import torch.nn as nn

from interpose import interposed
from interpose.iterations import group_steps


def _step(m: nn.Module) -> None:
    m(torch.randn(64, 256, device="cuda")).sum().backward()


def test_alternating_optimizers_are_one_iteration_each_round(cfg):
    with interposed(cfg) as rt:
        d, g = nn.Linear(256, 256).cuda(), nn.Linear(256, 256).cuda()
        od, og = torch.optim.Adam(d.parameters()), torch.optim.Adam(g.parameters())
        for _ in range(4):
            _step(d)
            od.step()
            _step(g)
            og.step()
        res = rt.result()
    assert res.iteration_kind == "optimizer_step" and len(res.iterations) == 4
    ms = [e - s for s, e in res.iterations]
    assert max(ms[1:]) < 1.2 * min(ms[1:]), ms  # whole rounds, no half-iterations


def test_critic_schedule_and_a_chain_of_optimizers(cfg):
    with interposed(cfg) as rt:
        d, g = nn.Linear(256, 256).cuda(), nn.Linear(256, 256).cuda()
        od, og = torch.optim.SGD(d.parameters(), lr=0.1), torch.optim.SGD(g.parameters(), lr=0.1)
        for _ in range(3):
            for _ in range(5):
                _step(d)
                od.step()
            _step(g)
            og.step()
        assert len(rt.result().iterations) == 3

    class Chained:  # not a torch.optim.Optimizer: its inner steps are each outermost
        def __init__(self, *opts):
            self.opts = opts

        def step(self):
            for o in self.opts:
                o.step()

    with interposed(cfg) as rt:
        a, b = nn.Linear(256, 256).cuda(), nn.Linear(256, 256).cuda()
        opt = Chained(torch.optim.AdamW(a.parameters()), torch.optim.AdamW(b.parameters()))
        for _ in range(3):
            b(a(torch.randn(64, 256, device="cuda"))).sum().backward()
            opt.step()
        res = rt.result()
    assert res.iteration_kind == "optimizer_step" and len(res.iterations) == 3


def test_gradient_accumulation_is_one_iteration_per_optimizer_step(cfg):
    with interposed(cfg) as rt:
        m = nn.Linear(256, 256).cuda()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for i in range(12):
            _step(m)
            if i % 4 == 3:
                opt.step()
                opt.zero_grad()
        res = rt.result()
    assert len(res.iterations) == 3
    with interposed(cfg) as rt:
        m = nn.Linear(256, 256).cuda()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for _ in range(3):
            _step(m)
            opt.step()
        one = rt.result().iterations[-1]
    s, e = res.iterations[-1]
    assert e - s > 2 * (one[1] - one[0])  # four micro-batches' work in one iteration


def test_an_irregular_pattern_is_labelled():
    spans = [(float(i), float(i + 1)) for i in range(6)]
    it, kind = group_steps(spans, [0, 1, 1, 0, 0, 1])
    assert kind == "optimizer_step_irregular" and it == spans
    it, kind = group_steps(spans[:5], [0, 1, 0, 1, 0])  # stopped mid-round: a partial last iteration
    assert kind == "optimizer_step" and it == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]
