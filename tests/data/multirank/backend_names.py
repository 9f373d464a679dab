"""Writes what ``get_backend`` / ``get_backend_config`` answer for the groups a script makes, and whether
``monitored_barrier`` runs (gloo) or raises (nccl), as on a GPU host, one line per rank into ``argv[1]``."""

import json
import sys

import torch.distributed as dist

dist.init_process_group("nccl")
g = dist.new_group(backend="gloo")
h = dist.new_group()
seen = {"default": [str(dist.get_backend()), dist.get_backend_config()],
        "gloo": [str(dist.get_backend(g)), dist.get_backend_config(g)], "inherited": str(dist.get_backend(h))}
try:
    dist.monitored_barrier()
    seen["monitored_nccl"] = "ran"
except ValueError as e:
    seen["monitored_nccl"] = str(e)
dist.monitored_barrier(g)
seen["monitored_gloo"] = "ran"
with open(f"{sys.argv[1]}.{dist.get_rank()}", "w") as f:
    json.dump(seen, f)
dist.destroy_process_group()
