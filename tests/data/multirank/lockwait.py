"""Rank 0 holds a file lock over some real CPU work; rank 1 waits for it in filelock's sleep-poll
loop (as Hugging Face datasets does on a shared cache) and writes its simulated wait to argv[1]."""

import os
import sys
import time

import torch.distributed as dist
from filelock import FileLock

dist.init_process_group("nccl")
lock = FileLock(sys.argv[1] + ".lock")
flag = sys.argv[1] + ".waiting"
held = sys.argv[1] + ".held"  # a real signal: a simulated barrier does not hold a rank's host in real time
if dist.get_rank() == 0:
    with lock:
        open(held, "w").close()
        while not os.path.exists(flag):  # rank 1 is about to wait (however late its barrier returns)
            pass
        s = 0
        for i in range(3_000_000):  # a few tenths of a second of real CPU work
            s += i
else:
    while not os.path.exists(held):  # rank 0 holds the lock, however late it started
        pass
    open(flag, "w").close()
    t0 = time.perf_counter()
    with lock:
        pass
    with open(sys.argv[1], "w") as f:
        f.write(str(time.perf_counter() - t0))
dist.barrier()
