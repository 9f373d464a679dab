"""Two optimizer steps on every rank, then rank 1 raises while the others wait in a barrier."""

import torch
import torch.distributed as dist

dist.init_process_group("nccl")
torch.cuda.set_device(dist.get_rank())
m = torch.nn.Linear(256, 256).cuda()
opt = torch.optim.SGD(m.parameters(), lr=0.1)
for _ in range(2):
    m(torch.randn(32, 256, device="cuda")).sum().backward()
    opt.step()
if dist.get_rank() == 1:
    raise ValueError("boom on rank 1 after training")
dist.barrier()
