import torch.distributed as dist

dist.init_process_group("nccl")
if dist.get_rank() == 1:
    raise ValueError("boom on rank 1")
dist.barrier()
