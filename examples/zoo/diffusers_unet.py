"""One diffusers text-to-image UNet training step, as diffusers' ``train_text_to_image.py`` runs it
(random init from a config, random latents and text embeddings in place of the VAE and text encoder):
noise, random timesteps, ``DDPMScheduler.add_noise``, the UNet's noise prediction, MSE loss, AdamW,
gradient clipping, in bf16 or fp16 autocast (fp16 with a GradScaler). The same file runs on a real GPU
(``python examples/zoo/diffusers_unet.py``) and under ``phantora run``.

Prints one JSON line: per-step ms (host clock around a synchronised step) and max_memory_allocated.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

p = argparse.ArgumentParser()
p.add_argument("--amp", default="bf16", choices=["fp16", "bf16"])
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--latent-size", type=int, default=32)
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()

torch.manual_seed(0)
unet = UNet2DConditionModel(
    sample_size=a.latent_size, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=512, attention_head_dim=8,
).cuda().train()
sched = DDPMScheduler(num_train_timesteps=1000)
opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
dtype = torch.float16 if a.amp == "fp16" else torch.bfloat16
scaler = torch.amp.GradScaler("cuda", enabled=a.amp == "fp16")
B, S = a.batch_size, a.latent_size
latents = torch.randn(B, 4, S, S)
text = torch.randn(B, 77, 512)
ms = []
for _ in range(a.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    x0 = latents.cuda(non_blocking=True)
    cond = text.cuda(non_blocking=True)
    noise = torch.randn_like(x0)
    t = torch.randint(0, sched.config.num_train_timesteps, (B,), device=x0.device).long()
    noisy = sched.add_noise(x0, noise, t)
    with torch.autocast("cuda", dtype=dtype):
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
    loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    ms.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"program": f"diffusers_unet_{a.amp}", "args": vars(a), "step_ms": [round(x, 3) for x in ms],
                  "max_memory_allocated": torch.cuda.max_memory_allocated()}))
