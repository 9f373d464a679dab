"""Train a Hugging Face transformers model (random init, built from its config) for a few steps, in bf16
autocast, the way a user's loop or ``Trainer`` does. The same file runs on a real GPU
(``python examples/zoo/hf_lm.py --model llama``) and under ``phantora run``.

    --model llama|mistral|qwen2|gpt2|bert|t5|mixtral   (causal LMs, BERT masked LM, T5 seq2seq, a MoE LM)
    --experts eager|grouped_mm   (mixtral) transformers' experts implementation: a loop over the
                experts, or one torch._grouped_mm per projection
    --pad       right-padded batches: an attention_mask with zeros, labels -100 on padding
    --trainer   transformers.Trainer (bf16=True, its default optimizer) instead of the plain loop

Prints one JSON line: per-step ms (host clock around a synchronised step) and max_memory_allocated.
"""

import argparse
import json
import tempfile
import time

import torch
import transformers as tf

p = argparse.ArgumentParser()
p.add_argument("--model", default="llama", choices=["llama", "mistral", "qwen2", "gpt2", "bert", "t5", "mixtral"])
p.add_argument("--experts", default="eager", choices=["eager", "grouped_mm"])
p.add_argument("--pad", action="store_true")
p.add_argument("--trainer", action="store_true")
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--seq-len", type=int, default=512)
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()

V, H, L, B, S = 32000, a.hidden, a.layers, a.batch_size, a.seq_len
decoder = dict(vocab_size=V, hidden_size=H, intermediate_size=int(2.75 * H), num_hidden_layers=L,
               num_attention_heads=H // 64, num_key_value_heads=max(1, H // 256), max_position_embeddings=S)
if a.model == "llama":
    model = tf.LlamaForCausalLM(tf.LlamaConfig(**decoder))
elif a.model == "mistral":
    model = tf.MistralForCausalLM(tf.MistralConfig(**decoder))
elif a.model == "qwen2":
    model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**decoder))
elif a.model == "mixtral":
    model = tf.MixtralForCausalLM(tf.MixtralConfig(**decoder, num_local_experts=8, num_experts_per_tok=2,
                                                   experts_implementation=a.experts))
elif a.model == "gpt2":
    model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=V, n_embd=H, n_layer=L, n_head=H // 64, n_positions=S))
elif a.model == "bert":
    model = tf.BertForMaskedLM(tf.BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=H // 64,
                                             intermediate_size=4 * H, max_position_embeddings=S))
else:
    model = tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=V, d_model=H, d_ff=4 * H, d_kv=64, num_layers=L,
                                                      num_heads=H // 64, decoder_start_token_id=0, pad_token_id=0))

# the data a tokenizer and collator would give: token ids and masks made on the host
g = torch.Generator().manual_seed(0)
ids = torch.randint(1, V, (B, S), generator=g)
mask = torch.ones(B, S, dtype=torch.long)
if a.pad:
    for i in range(B):  # rows of decreasing length, the first one full
        mask[i, S - i * S // (2 * B):] = 0
    ids = ids.masked_fill(mask == 0, 0)
labels = ids.masked_fill(mask == 0, -100)
if a.model == "bert":  # masked LM: predict 15% of the tokens
    labels = labels.masked_fill(torch.rand(B, S, generator=g) > 0.15, -100)
if a.model == "t5":  # seq2seq: a target a quarter as long
    labels = torch.randint(1, V, (B, S // 4), generator=g)
batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
ms: list[float] = []

if a.trainer:
    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return B * a.steps

        def __getitem__(self, i):
            return {k: v[i % B] for k, v in batch.items()}

    class StepTimer(tf.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            ms.append((time.perf_counter() - self.t0) * 1e3)

    with tempfile.TemporaryDirectory() as out:
        targs = tf.TrainingArguments(output_dir=out, per_device_train_batch_size=B, max_steps=a.steps, bf16=True,
                                     learning_rate=1e-4, save_strategy="no", logging_strategy="no", report_to="none",
                                     disable_tqdm=True, dataloader_num_workers=0)
        tf.Trainer(model=model, args=targs, train_dataset=Rows(), callbacks=[StepTimer()]).train()
else:
    model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    for _ in range(a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        inputs = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3)

experts = getattr(model.config, "_experts_implementation", None)
print(json.dumps({"program": f"hf_{a.model}" + (f"_{a.experts}" if a.model == "mixtral" else "")
                  + ("_pad" if a.pad else "") + ("_trainer" if a.trainer else ""),
                  "experts_implementation": experts,
                  "args": vars(a), "step_ms": [round(x, 3) for x in ms],
                  "max_memory_allocated": torch.cuda.max_memory_allocated()}))
