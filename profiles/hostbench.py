"""How fast this host runs eager PyTorch's host-side work: one figure, comparable across machines.

Why: a host-bound program's step is set by the CPU that runs the script, and the simulating
machine is not the target host. The host-time model (``host_time="measured"``) measures the
script's own Python on the simulating machine and scales it by ``target / local`` of this
benchmark; ``phantora profile`` stores the GPU host's figure in the profile header
(``extra.host_bench_us``) so a replayed profile carries the speed of the host it came from.

The workload is what sits between kernel launches in real programs: ``nn.Module`` calls,
functional wrappers and the dispatcher reached from Python, on CPU tensors of one element
(their kernels are negligible), plus plain Python (dicts, attribute access, small loops).
The figure is the main thread's CPU time (``time.thread_time``, what measured host time counts)
per unit, minimum over repeats, in microseconds, so being descheduled on a busy machine does not
count and a noisy repeat is dropped.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4)
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc2(F.gelu(self.fc1(self.norm(x))))
        return x + h


def _python_work(state: dict[str, int]) -> int:
    total = 0
    for i in range(20):
        key = f"k{i % 5}"
        state[key] = state.get(key, 0) + i
        total += len(key) + state[key] % 7
    return total


def _unit(model: nn.Module, x: torch.Tensor, state: dict[str, int]) -> None:
    with torch.no_grad():
        y = model(x)
        y = y.view(-1).add_(1.0).mul(0.5)
        torch.cat([y, y]).sum()
    _python_work(state)


def python_probe_us(rounds: int = 3) -> float:
    """CPU time of a ~0.1 ms pure-Python workload (minimum of ``rounds``), cheap enough to repeat during
    a run: its ratio to :func:`host_bench_reference`'s probe says how much slower this machine runs now
    (a busy SMT sibling or a noisy neighbour inflates CPU time too) than when the benchmark ran."""
    state: dict[str, int] = {}
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(20):
            _python_work(state)
        best = min(best, (time.thread_time() - t0) * 1e6)
    return best


_reference: tuple[float, float] | None = None


def host_bench_reference() -> tuple[float, float]:
    """This machine's benchmark figure and the probe measured beside it, once per process (forked
    ranks inherit the parent's: :func:`measure_reference_in_subprocess` fills it for them)."""
    global _reference
    if _reference is None:
        bench = measure_host_bench_us()
        _reference = (bench, min(python_probe_us() for _ in range(20)))
    return _reference


def measure_reference_in_subprocess() -> tuple[float, float]:
    """:func:`host_bench_reference`, measured in a fresh Python process and kept in this one.

    Why: a process that is going to fork ranks must not run torch CPU ops itself; once it has, GNU
    OpenMP's thread pool is in a state the forked children inherit, and their first multi-threaded op
    (``torch.zeros`` of a large tensor) blocks for ever in ``gomp_team_barrier_wait_end`` (seen with the
    DeepSpeed, Megatron-Core and Lightning launchers under ``--host-time measured``)."""
    import json
    import subprocess
    import sys

    global _reference
    code = "import json; from profiles.hostbench import host_bench_reference as r; print(json.dumps(r()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    bench, probe = json.loads(out.stdout.strip().splitlines()[-1])
    _reference = (float(bench), float(probe))
    return _reference


def host_bench_us() -> float:
    """This machine's figure, measured once per process (forked ranks inherit the parent's)."""
    return host_bench_reference()[0]


def measure_host_bench_us(units: int = 40, repeats: int = 30) -> float:
    """Microseconds per benchmark unit on this machine (minimum over ``repeats`` runs of ``units``)."""
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = nn.Sequential(*[_Block() for _ in range(4)]).eval()
        x = torch.randn(1, 4)
    # One-element ops never use intra-op threads, so the thread count is left alone: changing it here
    # (in the parent, before ranks fork) breaks OpenMP in forked children ("Invalid thread pool").
    state: dict[str, int] = {}
    for _ in range(100):  # warm caches and the allocator
        _unit(model, x, state)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(units):
            _unit(model, x, state)
        best = min(best, (time.thread_time() - t0) * 1e6 / units)
    return best


if __name__ == "__main__":
    import json

    print(json.dumps({"host_bench_us": round(measure_host_bench_us(), 3), "torch": torch.__version__}))
