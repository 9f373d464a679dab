"""Where iterations end: outermost optimizer steps, else outermost module forwards (inference)."""

from __future__ import annotations

import torch
import torch.nn as nn

from interpose import interposed


class Container(torch.optim.Optimizer):
    """An optimizer whose step runs other optimizers' steps (one per model part)."""

    def __init__(self, parts):
        self.parts = parts
        super().__init__([p for o in parts for g in o.param_groups for p in g["params"]], {})

    def step(self, closure=None):
        for o in self.parts:
            o.step()


def test_a_container_of_optimizers_is_one_step(cfg):
    with interposed(cfg) as rt:
        a, b = nn.Linear(8, 8).cuda(), nn.Linear(8, 8).cuda()
        opt = Container([torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)])
        for _ in range(3):
            b(a(torch.randn(4, 8, device="cuda"))).sum().backward()
            opt.step()
        res = rt.result()
    assert res.iteration_kind == "optimizer_step" and len(res.iterations) == 3
    assert all(e - s > 0 for s, e in res.iterations)  # no zero-length half-iterations


def test_inference_counts_outermost_forwards(cfg):
    with interposed(cfg) as rt:
        m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.ReLU())).cuda()
        with torch.no_grad():
            for _ in range(5):
                m(torch.randn(4, 8, device="cuda"))
        res = rt.result()
    assert res.iteration_kind == "forward" and len(res.iterations) == 5


def test_training_ignores_forwards_and_no_work_is_none(cfg):
    with interposed(cfg) as rt:
        m = nn.Linear(8, 8).cuda()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for _ in range(2):
            m(torch.randn(4, 8, device="cuda")).sum().backward()
            m(torch.randn(4, 8, device="cuda"))  # an eval forward between steps
            opt.step()
        assert len(rt.result().iterations) == 2
    with interposed(cfg) as rt:
        torch.randn(4, device="cuda") * 2
        res = rt.result()
    assert res.iteration_kind == "none" and res.iterations == []
