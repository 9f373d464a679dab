"""Every rank waits to receive from its left neighbour; nobody sends."""
import torch
import torch.distributed as dist

dist.init_process_group("nccl")
r, n = dist.get_rank(), dist.get_world_size()
t = torch.ones(16)
dist.recv(t, src=(r - 1) % n)
