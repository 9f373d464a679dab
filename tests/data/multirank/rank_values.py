"""Each rank contributes different values to collectives and writes what it got back (JSON) to
argv[1].<rank>: known cuda integers and flags, small host floats, a gloo group's CPU tensors."""

import json
import sys

import torch
import torch.distributed as dist

dist.init_process_group("nccl")
r, n = dist.get_rank(), dist.get_world_size()
gloo = dist.new_group(backend="gloo")
got = {}
t = torch.tensor([r + 1, 10 * r], device="cuda")
dist.all_reduce(t)
got["sum"] = t.tolist()
m = torch.tensor([r], device="cuda")
dist.all_reduce(m, op=dist.ReduceOp.MAX)
got["max"] = m.item()
done = torch.tensor(r == 0, device="cuda")  # only rank 0 finished
dist.all_reduce(done, op=dist.ReduceOp.MIN)
got["all_done"] = bool(done)
f = torch.tensor([0.5 * r], device="cuda")
dist.all_reduce(f)
got["float_sum"] = f.item()
c = torch.tensor([r + 1.0])
dist.all_reduce(c, group=gloo)
got["gloo_sum"] = c.item()
out = torch.empty(n, dtype=torch.long, device="cuda")
dist.all_gather_into_tensor(out, torch.tensor([7 * r], device="cuda"))
got["gathered"] = out.tolist()
parts = [torch.empty(1, dtype=torch.long, device="cuda") for _ in range(n)]
dist.all_gather(parts, torch.tensor([r * r], device="cuda"))
got["gathered_list"] = [p.item() for p in parts]
with open(f"{sys.argv[1]}.{r}", "w") as fh:
    json.dump(got, fh)
dist.destroy_process_group()
