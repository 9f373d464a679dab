"""PyTorch Lightning: a LightningModule trained by ``Trainer(accelerator="gpu", devices=N, strategy=...)``
with ``ddp`` or ``fsdp``.

Real: ``python train.py --devices 2`` (Lightning starts the other processes) or
``torchrun --nproc-per-node 2 train.py --devices 2``. Simulated, unchanged:
``phantora run --nproc-per-node 2 examples/frameworks/lightning/train.py --devices 2`` (Lightning sees
torchrun's environment and lets the launcher's processes be its ranks).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl  # type: ignore[no-redef]


class Classifier(pl.LightningModule):
    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, 4 * dim), nn.GELU(),
                                 nn.Linear(4 * dim, classes))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("loss", loss, sync_dist=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp", "auto"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    n = args.batch_size * args.steps * args.devices
    ds = TensorDataset(torch.randn(n, args.dim), torch.randint(0, 10, (n,)))
    trainer = pl.Trainer(accelerator="gpu", devices=args.devices, strategy=args.strategy, max_steps=args.steps,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(Classifier(args.dim, 10), DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers))
    if trainer.global_rank == 0:
        print(f"lightning {args.strategy}: {trainer.global_step} steps on {trainer.world_size} devices")


if __name__ == "__main__":
    main()
