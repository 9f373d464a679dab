"""Greedy decoding with Hugging Face `generate()` on a random-init Llama (KV cache); the same file runs on a
real GPU (`python examples/generate/generate.py`) and under `phantora run`.

`min_new_tokens` = `max_new_tokens` keeps a random model from stopping early on the real GPU. Prints one JSON
line: tokens generated, ms per new token (host clock around `generate`, after a warm-up call) and peak
allocated bytes.
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=2048)
p.add_argument("--layers", type=int, default=16)
p.add_argument("--batch-size", type=int, default=1)
p.add_argument("--prompt-len", type=int, default=128)
p.add_argument("--new-tokens", type=int, default=64)
p.add_argument("--cache", default="dynamic", choices=["dynamic", "static"])
a = p.parse_args()

torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=32000, hidden_size=a.hidden, intermediate_size=int(2.75 * a.hidden) // 256 * 256,
                  num_hidden_layers=a.layers, num_attention_heads=a.hidden // 64, num_key_value_heads=max(1, a.hidden // 256),
                  max_position_embeddings=4096)
model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
ids = torch.randint(3, cfg.vocab_size, (a.batch_size, a.prompt_len)).cuda()
kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0, eos_token_id=2,
          cache_implementation=a.cache if a.cache == "static" else None)
with torch.no_grad():
    model.generate(ids, **dict(kw, max_new_tokens=2, min_new_tokens=2))  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, **kw)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
new = out.shape[1] - a.prompt_len
print(json.dumps({"program": "generate", "args": vars(a), "new_tokens": new, "ms_per_token": round(dt * 1e3 / new, 3),
                  "tokens_per_s": round(a.batch_size * new / dt, 1), "max_memory_allocated": torch.cuda.max_memory_allocated()}))
