"""DeepSpeed ZeRO stage 1/2/3 on a small transformer, through ``deepspeed.initialize`` on a model
built on the CPU (DeepSpeed's documented usage: the engine moves it to the GPU).

Real: ``deepspeed --num_gpus 2 train.py --zero-stage 3`` (or ``torchrun --nproc-per-node 2 train.py``).
Simulated, unchanged: ``phantora run --nproc-per-node 2 examples/frameworks/deepspeed/train.py --zero-stage 3``.
"""

from __future__ import annotations

import argparse
import os

import deepspeed
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zero-stage", type=int, default=2, choices=[0, 1, 2, 3])
    ap.add_argument("--offload", choices=["none", "cpu"], default="none",
                    help="ZeRO-Offload of the optimizer state (stage >= 1; needs DeepSpeed's CPU Adam op)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)))  # the deepspeed launcher
    args = ap.parse_args()

    deepspeed.init_distributed(dist_backend="nccl")
    config: dict = {
        "train_micro_batch_size_per_gpu": args.micro_batch,
        "gradient_accumulation_steps": args.grad_accum,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "torch_adam": True}},
        # buckets sized for a small model (the defaults, 5e8 elements, would dominate its memory)
        "zero_optimization": {"stage": args.zero_stage, "reduce_bucket_size": 2e6, "allgather_bucket_size": 2e6,
                              "stage3_prefetch_bucket_size": 2e6, "stage3_param_persistence_threshold": 1e4},
        "bf16": {"enabled": args.bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if args.offload != "none":
        config["zero_optimization"]["offload_optimizer"] = {"device": args.offload}
    model = TinyLM(args.vocab, args.d_model, args.layers, heads=4)  # on the CPU, as DeepSpeed's docs build it
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    for _ in range(args.steps * args.grad_accum):
        idx = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len), device=engine.device)
        logits = engine(idx)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), idx.flatten())
        engine.backward(loss)
        engine.step()
    if engine.global_rank == 0:
        print(f"ZeRO-{args.zero_stage}: {engine.global_steps} steps, loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
