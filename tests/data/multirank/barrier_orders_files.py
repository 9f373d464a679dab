"""Rank 0 prepares a file over some real CPU work while the others go straight to dist.barrier();
after it every rank must see the file (as with `if rank == 0: download(); dist.barrier(); load()`)."""

import os
import sys

import torch.distributed as dist

dist.init_process_group("nccl")
path = sys.argv[1]
if dist.get_rank() == 0:
    s = 0
    for i in range(2_000_000):
        s += i
    with open(path + ".tmp", "w") as f:
        f.write("ready")
    os.replace(path + ".tmp", path)
dist.barrier()
with open(path + f".seen{dist.get_rank()}", "w") as f:
    f.write(str(os.path.exists(path)))
