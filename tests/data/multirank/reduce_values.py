"""Known integer values through ``dist.reduce`` and ``dist.reduce_scatter_tensor``: the root gets the
members' reduction and the others keep theirs; each member gets its chunk of the reduction. One JSON file
per rank at ``argv[1].<rank>``."""

import json
import sys

import torch
import torch.distributed as dist

dist.init_process_group("nccl")
r = dist.get_rank()
t = torch.tensor([r + 1, 10 * (r + 1)], device="cuda")
dist.reduce(t, dst=0)
m = torch.tensor([r + 1, 5], device="cuda")
dist.reduce(m, dst=1, op=dist.ReduceOp.MAX)
inp = torch.arange(4, device="cuda") + 10 * r
out = torch.empty(2, dtype=inp.dtype, device="cuda")
dist.reduce_scatter_tensor(out, inp)
with open(f"{sys.argv[1]}.{r}", "w") as f:
    json.dump({"reduce": t.tolist(), "reduce_max": m.tolist(), "reduce_scatter": out.tolist()}, f)
dist.destroy_process_group()
