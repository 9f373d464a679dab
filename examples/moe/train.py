"""Train a Hugging Face Mixtral-style MoE (random init) for a few steps; the same file runs on a real GPU
(`python examples/moe/train.py`) and under `phantora run`.

Prints one JSON line: per-step ms (host clock around a synchronised step), peak allocated bytes and the
experts implementation (`eager` loops over experts with data-dependent `nonzero`/`where`; `grouped_mm`
sorts tokens by expert and runs `torch._grouped_mm` with offsets from `histc`).
"""

import argparse
import json
import time

import torch
from transformers import MixtralConfig, MixtralForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--experts-impl", default="eager", choices=["eager", "grouped_mm"])
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--experts", type=int, default=8)
p.add_argument("--top-k", type=int, default=2)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--seq-len", type=int, default=512)
p.add_argument("--steps", type=int, default=8)
a = p.parse_args()

torch.manual_seed(0)
cfg = MixtralConfig(vocab_size=32000, hidden_size=a.hidden, intermediate_size=2 * a.hidden,
                    num_hidden_layers=a.layers, num_attention_heads=a.hidden // 64, num_key_value_heads=max(1, a.hidden // 256),
                    num_local_experts=a.experts, num_experts_per_tok=a.top_k, max_position_embeddings=a.seq_len,
                    experts_implementation=a.experts_impl, use_cache=False)
model = MixtralForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(0, cfg.vocab_size, (a.batch_size, a.seq_len)).cuda()
ms = []
for _ in range(a.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    ms.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"program": "moe", "impl": a.experts_impl, "args": vars(a), "step_ms": [round(x, 3) for x in ms],
                  "max_memory_allocated": torch.cuda.max_memory_allocated()}))
