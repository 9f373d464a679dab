"""SDPA's backend choice over the probe grid measured on a real H200 (torch 2.11.0+cu130, cuDNN 9.19):
``benchmarks/real/sdpa_probe.py 60`` on the device tool, 2026-12-02, 379 cases (masks none / bool /
float / grad-requiring / batch-1 / full / permuted, x requires_grad x dropout 0 and 0.1 x bf16/fp32 x
head dim 64/128 x GQA), in ``tests/data/sdpa_probe_h200_torch211.jsonl``. The shim's choice must be
the one the GPU made in every case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import roofline_cfg
from torch.nn.attention import SDPBackend

from interpose import interposed
from interpose.sdpa import choose_backend

LINES = (Path(__file__).parent / "data" / "sdpa_probe_h200_torch211.jsonl").read_text().splitlines()
HEADER, CASES = json.loads(LINES[0]), [json.loads(x) for x in LINES[1:]]
B, H, S = 2, 4, 128


def _inputs(c: dict):
    dt, d, rg = getattr(torch, c["dtype"]), c["head_dim"], c["qkv_requires_grad"]
    q = torch.randn(B, H, S, d, device="cuda", dtype=dt, requires_grad=rg)
    k = torch.randn(B, c["kv_heads"], S, d, device="cuda", dtype=dt, requires_grad=rg)
    v = torch.randn(B, c["kv_heads"], S, d, device="cuda", dtype=dt, requires_grad=rg)
    spec = HEADER["grid"]["masks"][c["mask"]]
    m = None
    if spec is not None:
        shape, kind, mrg = spec["shape"], spec["kind"], spec["requires_grad"]
        if kind == "bool":
            m = torch.ones(shape, device="cuda", dtype=torch.bool).tril()
        elif kind == "permuted":
            m = torch.zeros(S, S, H, device="cuda", dtype=dt, requires_grad=mrg).permute(2, 0, 1).unsqueeze(0)
        else:
            m = torch.zeros(shape, device="cuda", dtype=dt, requires_grad=mrg)
    return q, k, v, m


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_shim_chooses_the_backend_the_h200_chose(dtype):
    cfg = roofline_cfg("h200")
    cases = [c for c in CASES if c["dtype"] == dtype and not c.get("error")]
    assert len(cases) > 50
    wrong = []
    with interposed(cfg):
        for c in cases:
            q, k, v, m = _inputs(c)
            got = SDPBackend(choose_backend(q, k, v, m, c["dropout_p"], c["is_causal"], None, c["enable_gqa"])).name
            if got != c["backend"]:
                wrong.append(f"{c['mask']} causal={c['is_causal']} grad={c['qkv_requires_grad']} p={c['dropout_p']} "
                             f"d={c['head_dim']} gqa={c['enable_gqa']}: GPU {c['backend']}, shim {got}")  # fmt: skip
    assert not wrong, f"{len(wrong)} of {len(cases)} differ:\n" + "\n".join(wrong[:40])
