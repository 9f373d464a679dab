"""Image-classification training steps the way torchvision's and timm's reference scripts run them.

The loop is torchvision's ``references/classification/train.py`` (``train_one_epoch``): images
from a ``DataLoader`` with ``pin_memory=True``, ``image.to(device)``, forward and loss under
``torch.autocast`` with a ``GradScaler`` for fp16 (``--amp``), SGD with momentum and label
smoothing, then ``loss.item()`` and top-1/top-5 accuracy each step. ``--channels-last`` converts
the model and each batch as timm's ``train.py`` does (``--channels-last``); ``--amp-dtype
bfloat16`` is timm's ``--amp-dtype``. Models come from their packages: ``--lib torchvision``
(``torchvision.models.get_model``) or ``--lib timm`` (``timm.create_model``). The data are
``torchvision.datasets.FakeData`` images through the reference training transforms.

Runs for real on a GPU (``python examples/vision/train.py``) and unchanged under
``phantora run examples/vision/train.py``. No phantora imports on purpose. PyPI's torchvision
needs the CUDA build of torch (README, "The CUDA build of torch").
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from torch import nn
from torchvision.transforms import v2


def accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)) -> list[torch.Tensor]:
    """references/classification/utils.py: top-k accuracy in percent."""
    with torch.inference_mode():
        maxk = max(topk)
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target[None])
        return [correct[:k].flatten().sum(dtype=torch.float32) * (100.0 / batch_size) for k in topk]


def build_model(lib: str, name: str, num_classes: int) -> nn.Module:
    if lib == "timm":
        import timm

        return timm.create_model(name, num_classes=num_classes)
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", choices=["torchvision", "timm"], default="torchvision")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch-size", "-b", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 with GradScaler unless --amp-dtype)")
    p.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--workers", "-j", type=int, default=0)
    args = p.parse_args()

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    transform = v2.Compose([
        v2.PILToTensor(),
        v2.RandomResizedCrop(args.image_size, antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.ToDtype(torch.float, scale=True),
        v2.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])
    dataset = torchvision.datasets.FakeData(
        size=args.batch_size * args.steps, image_size=(3, args.image_size, args.image_size),
        num_classes=args.num_classes, transform=transform,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, pin_memory=True, drop_last=True)

    model = build_model(args.lib, args.model, args.num_classes)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    amp_dtype = getattr(torch, args.amp_dtype)
    scaler = torch.amp.GradScaler("cuda") if args.amp and amp_dtype == torch.float16 else None

    model.train()
    for step, (image, target) in enumerate(loader):
        start = time.time()
        image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if args.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=amp_dtype, enabled=args.amp):
            output = model(image)
            loss = criterion(output, target)
        optimizer.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        acc1, acc5 = accuracy(output, target, topk=(1, 5))
        loss_v, acc1_v, acc5_v = loss.item(), acc1.item(), acc5.item()
        ms = (time.time() - start) * 1e3
        print(f"step {step} | loss {loss_v:.3f} | acc1 {acc1_v:.1f} acc5 {acc5_v:.1f} | {ms:.2f} ms | "
              f"{args.batch_size / ms * 1e3:.0f} img/s", flush=True)
    torch.cuda.synchronize()
    print(f"max_memory_allocated: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
