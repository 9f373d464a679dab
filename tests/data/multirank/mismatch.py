import torch
import torch.distributed as dist

dist.init_process_group("nccl")
t = torch.ones(16)
if dist.get_rank() == 0:
    dist.all_reduce(t)
else:
    dist.broadcast(t, src=0)
