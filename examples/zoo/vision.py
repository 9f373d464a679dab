"""Train a torchvision or timm image classifier (random init, random images) for a few steps the way their
reference scripts do: AMP autocast (fp16 with a GradScaler, or bf16), channels_last, label smoothing,
SGD+momentum for ResNet (torchvision's recipe), AdamW with gradient clipping for ViT and ConvNeXt.
Runs on a real GPU (``python examples/zoo/vision.py --model resnet50``) and under ``phantora run``
(torchvision's and timm's ops need the CUDA build of torch there).

Prints one JSON line: per-step ms (host clock around a synchronised step) and max_memory_allocated.
"""

import argparse
import json
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--model", default="resnet50", choices=["resnet50", "vit_b_16", "convnext_tiny", "efficientnet_b0"])
p.add_argument("--amp", default="fp16", choices=["fp16", "bf16", "none"])
p.add_argument("--channels-last", action="store_true")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--image-size", type=int, default=224)
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()

torch.manual_seed(0)
if a.model in ("convnext_tiny", "efficientnet_b0"):
    import timm

    model = timm.create_model(a.model, pretrained=False, num_classes=1000)
else:
    import torchvision

    model = getattr(torchvision.models, a.model)(weights=None)
model = model.cuda().train()
if a.channels_last:
    model = model.to(memory_format=torch.channels_last)
if a.model == "resnet50":
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
else:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "none": torch.float32}[a.amp]
scaler = torch.amp.GradScaler("cuda", enabled=a.amp == "fp16")
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
images = torch.randn(a.batch_size, 3, a.image_size, a.image_size).pin_memory()
target = torch.randint(0, 1000, (a.batch_size,)).pin_memory()
ms = []
for _ in range(a.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    x = images.cuda(non_blocking=True)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = target.cuda(non_blocking=True)
    with torch.autocast("cuda", dtype=dtype, enabled=a.amp != "none"):
        loss = loss_fn(model(x), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if a.model != "resnet50":
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()
    torch.cuda.synchronize()
    ms.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"program": f"vision_{a.model}", "args": vars(a), "step_ms": [round(x, 3) for x in ms],
                  "max_memory_allocated": torch.cuda.max_memory_allocated()}))
