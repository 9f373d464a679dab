"""A nanoGPT-style training loop with a configurable size: the GPT family sweep's workload.

Used two ways on a real GPU (see benchmarks/real/profile_device.sh):
plainly, to measure ``mean ms/iter``; and under ``phantora profile`` to record
kernel timings for the sweep part of the shipped profiles. Same model and loop
as a typical nanoGPT script: learned position embeddings, pre-LayerNorm blocks,
causal SDPA, GELU MLP, tied LM head, fused AdamW, optional bf16 autocast.

    python3 benchmarks/real/profile_gpt.py --hidden 1024 --layers 4 --seq 1024 --batch 4 --dtype bf16
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, seq: int, d: int, layers: int, heads: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=0, help="0: hidden // 64")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    heads = a.heads or max(1, a.hidden // 64)
    model = GPT(a.vocab, a.seq, a.hidden, a.layers, heads).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=dev.type == "cuda")
    use_amp = a.dtype == "bf16"

    def step() -> torch.Tensor:
        idx = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        tgt = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = model(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1e3 / a.steps
    print(f"config hidden={a.hidden} layers={a.layers} seq={a.seq} batch={a.batch} dtype={a.dtype}")
    print(f"mean ms/iter: {ms:.3f}  loss {float(loss):.3f}")


if __name__ == "__main__":
    main()
