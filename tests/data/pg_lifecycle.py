"""Process-group lifecycle a framework goes through (Megatron's initialize/destroy_model_parallel):
subgroups made, used and destroyed, twice, a never-used one destroyed, then the world destroyed."""

import os

import torch
import torch.distributed as dist


def main() -> None:
    local = int(os.environ["LOCAL_RANK"])
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    torch.cuda.set_device(local)
    world = dist.get_world_size()
    x = torch.ones(1024, device="cuda")
    for _ in range(2):
        a = dist.new_group(list(range(world)))
        b = dist.new_group(list(range(world)), use_local_synchronization=True)
        singles, _ = dist.new_subgroups(group_size=1)
        dist.all_reduce(x, group=a)
        dist.all_reduce(x, group=b)
        dist.all_reduce(x, group=singles)
        dist.destroy_process_group(a)
        dist.destroy_process_group(b)
    dist.destroy_process_group(dist.new_group(list(range(world))))  # never used
    m = torch.nn.Linear(8, 8).cuda()
    opt = torch.optim.SGD(m.parameters())
    m(torch.randn(2, 8, device="cuda")).sum().backward()
    opt.step()
    # known values a broadcast carries are the root's (DeepSpeed's rank-agreement checks)
    t = torch.tensor([62, 7] if dist.get_rank() == 0 else [-1, -1], device="cuda")
    dist.broadcast(t, src=0)
    print(f"rank {dist.get_rank()} received {t.tolist()}")
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {dist.get_rank() if dist.is_initialized() else local} destroyed: {not dist.is_initialized()}")


if __name__ == "__main__":
    main()
