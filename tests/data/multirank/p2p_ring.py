"""Ring exchange with batch_isend_irecv, then an all_gather_into_tensor; checks values."""
import torch
import torch.distributed as dist

dist.init_process_group("nccl")
r, n = dist.get_rank(), dist.get_world_size()
send, recv = torch.full((1024,), float(r)), torch.zeros(1024)
ops = [dist.P2POp(dist.isend, send, (r + 1) % n), dist.P2POp(dist.irecv, recv, (r - 1) % n)]
for w in dist.batch_isend_irecv(ops):
    w.wait()
out = torch.zeros(n * 4)
dist.all_gather_into_tensor(out, torch.ones(4))
assert out.sum().item() == 4 * n
dist.destroy_process_group()
