"""Train a tiny Hugging Face model built from its config (no weights needed).

Usage: python hf_train.py {gpt2,llama,bert,vit} [--steps N] [--batch B] [--seq S]
Runs AdamW + bf16 autocast + clip_grad_norm_ + a cosine warmup schedule, then one
inference pass under ``torch.inference_mode()``. Plain PyTorch: works on a real GPU
and under ``phantora run``.
"""

import argparse

import torch
import transformers as tf

ap = argparse.ArgumentParser()
ap.add_argument("model", choices=["gpt2", "llama", "bert", "vit"])
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--seq", type=int, default=64)
ap.add_argument("--hidden", type=int, default=256)
ap.add_argument("--layers", type=int, default=2)
args = ap.parse_args()

torch.manual_seed(0)
torch.cuda.manual_seed_all(0)
h, L, B, S = args.hidden, args.layers, args.batch, args.seq
if args.model == "gpt2":
    cfg = tf.GPT2Config(n_embd=h, n_layer=L, n_head=4, n_positions=S, vocab_size=1000)
    model = tf.AutoModelForCausalLM.from_config(cfg)
elif args.model == "llama":
    cfg = tf.LlamaConfig(
        hidden_size=h, intermediate_size=2 * h, num_hidden_layers=L, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, max_position_embeddings=S,
    )
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
elif args.model == "bert":
    cfg = tf.BertConfig(
        hidden_size=h, num_hidden_layers=L, num_attention_heads=4, intermediate_size=2 * h,
        vocab_size=1000, max_position_embeddings=S,
    )
    model = tf.AutoModelForMaskedLM.from_config(cfg)
else:
    cfg = tf.ViTConfig(
        hidden_size=h, num_hidden_layers=L, num_attention_heads=4, intermediate_size=2 * h,
        image_size=32, patch_size=8, num_labels=10,
    )
    model = tf.AutoModelForImageClassification.from_config(cfg)

opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
model.to("cuda")
model.train()
sched = tf.get_cosine_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=args.steps)


def batch():
    if args.model == "vit":
        x = torch.randn(B, 3, 32, 32, pin_memory=True).to("cuda", non_blocking=True)
        return {"pixel_values": x, "labels": torch.randint(0, 10, (B,), device="cuda")}
    ids = torch.randint(0, 1000, (B, S), pin_memory=True).to("cuda", non_blocking=True)
    mask = torch.ones(B, S, dtype=torch.long, device="cuda")
    labels = ids.clone()
    if args.model == "bert":
        labels = labels.masked_fill(torch.rand(B, S, device="cuda") > 0.15, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


for step in range(args.steps):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(**batch())
    out.loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    print(f"step {step} loss {out.loss.item():.4f} norm {norm.item():.3f} lr {sched.get_last_lr()[0]:.2e}")

model.eval()
with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    logits = model(**{k: v for k, v in batch().items() if k != "labels"}).logits
print("inference logits", tuple(logits.shape), logits.dtype, logits.device)
print("peak MiB", torch.cuda.max_memory_allocated() / 2**20)
