"""Two all-reduces and a barrier on every rank (CPU tensors, torchrun env)."""
import torch
import torch.distributed as dist

dist.init_process_group("nccl")
t = torch.ones(1 << 18)
dist.all_reduce(t)
w = dist.all_reduce(t, async_op=True)
w.wait()
dist.barrier()
assert t[0].item() == dist.get_world_size() ** 2, t[0]
print(f"rank {dist.get_rank()} ok")
dist.destroy_process_group()
