"""Object collectives (used by HF Trainer / accelerate) on cuda, under the simulated nccl backend."""
import os

import torch
import torch.distributed as dist

dist.init_process_group("nccl")
torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
objs = [None] * dist.get_world_size()
dist.all_gather_object(objs, {"rank": dist.get_rank(), "msg": "hi"})
assert all(o is not None and o["msg"] == "hi" for o in objs), objs
lst = [{"cfg": 1}] if dist.get_rank() == 0 else [None]
dist.broadcast_object_list(lst, src=0)
assert lst[0] == {"cfg": 1}, lst
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
print("objects ok", dist.get_rank())
