"""The one job type of ``phantora run``: 1..N simulated ranks (a single rank is N = 1).

A :class:`RunJob` says what every rank runs (script, argv, how its :class:`interpose.RankConfig` is
built) and the shape of the job (hosts × GPUs per host, the network between them, ``--symmetric``).
A world of one has no network: NCCL moves nothing there, so its collectives end at once
(:class:`interpose.distributed.LocalSink`); more ranks talk to the coordinator.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interpose import RankConfig
    from netsim.backend import NetworkBackend
    from phantora.launcher import LaunchSpec
    from phantora.scenario import Scenario

_WARM_MODULES = (
    "interpose.runner",
    "torch._dynamo",  # FakeTensorMode imports it on first use: ~5 s per process otherwise
    "torch.nn.parallel",
    "torch.distributed.device_mesh",
    "torch.distributed.fsdp",
    "torch.distributed.tensor",
    "torch.distributed.tensor.parallel",
    "torch.distributed.algorithms.ddp_comm_hooks",
)


def prewarm() -> None:
    """Import what ranks need before forking them: ranks share those pages instead of each paying, and
    import time is never counted as the run's wall time."""
    for name in _WARM_MODULES:
        with contextlib.suppress(ImportError):  # optional pieces of torch
            importlib.import_module(name)


def prewarm_host_bench() -> None:
    """Measure this machine's CPU benchmark once, before forking: every rank inherits the figure
    (measured host time scales by it), and ranks busy with each other cannot skew it."""
    from profiles.hostbench import measure_reference_in_subprocess

    measure_reference_in_subprocess()  # not here: torch CPU ops in the parent break OpenMP in forked ranks


@dataclass(kw_only=True)
class RunJob:
    """Everything a simulated run needs (built from a scenario and the CLI by :meth:`from_scenario`)."""

    script: str
    argv: list[str] = field(default_factory=list)
    module: bool = False
    """``script`` is a module name, run like ``python -m`` (``phantora run -m``)."""
    nnodes: int = 1
    nproc_per_node: int = 1
    gpu: Any
    """:class:`profiles.gpus.GpuSpec`."""
    compute_model: Any
    """:class:`profiles.compute.ComputeModel`, shared by all ranks (forked: copy-on-write)."""
    network: NetworkBackend | None = None
    """The scenario's network; ``None`` for a world of one (nothing to coordinate)."""
    host_time: str = "zero"
    host_bench_us: float | None = None
    """The target host's CPU benchmark (scenario ``host.bench_us``); ``None``: the profiles' recording host."""
    memory_limit_bytes: int | None = None
    values: Any = None
    """:class:`interpose.values.ValuePolicy` of every rank (``None``: the default policy)."""
    stdout_to_stderr: bool = False
    """Send the ranks' stdout to stderr (``--json`` keeps stdout for the summary rows)."""
    symmetric: bool = False
    """Execute rank 0 only; the other ranks are assumed to do the same (``--symmetric``)."""
    timeout_s: float | None = None
    """Wall-clock limit of the whole run (``--timeout``); past it every rank is killed."""
    compile: str = "inductor"
    """What ``torch.compile`` does in every rank (``--compile``; :attr:`interpose.RankConfig.compile`)."""

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def coordinated(self) -> bool:
        """Whether ranks talk to a coordinator (more than one simulated rank)."""
        return self.world_size > 1

    def launch_spec(self) -> LaunchSpec:
        from phantora.launcher import LaunchSpec

        return LaunchSpec(self.nnodes, self.nproc_per_node, symmetric=self.symmetric)

    def rank_config(self, rank: int) -> RankConfig:
        from interpose import RankConfig

        return RankConfig(
            rank=rank, world_size=self.world_size, local_rank=rank % self.nproc_per_node,
            local_world_size=self.nproc_per_node, gpu=self.gpu, compute_model=self.compute_model,
            memory_limit_bytes=self.memory_limit_bytes, host_time=self.host_time,  # type: ignore[arg-type]
            host_bench_us=self.host_bench_us, compile=self.compile,
            **({} if self.values is None else {"values": self.values}),
        )

    def shape(self) -> dict[str, Any]:
        """The job's shape as ``summary.json`` records it (``ranks``: simulated ranks)."""
        return {"nnodes": self.nnodes, "nproc_per_node": self.nproc_per_node, "world_size": self.world_size,
                "ranks": self.world_size, "symmetric": self.symmetric,
                "network_model": None if self.network is None else type(self.network).__name__}

    @classmethod
    def from_scenario(cls, scenario: Scenario, *, script: str, argv: list[str], nnodes: int | None = None,
                      nproc_per_node: int | None = None, compute_model: Any = None, **options: Any) -> RunJob:
        """The job for ``scenario`` (``nnodes``/``nproc_per_node`` override its shape). A network or
        compute model the scenario cannot build is a :class:`~phantora.scenario.ScenarioError` naming
        the file and field, raised here, before anything is forked."""
        from phantora.scenario import network_backend

        nn, npn = nnodes or scenario.hosts, nproc_per_node or scenario.gpus_per_host
        return cls(script=script, argv=list(argv), nnodes=nn, nproc_per_node=npn, gpu=scenario.gpu_spec(),
                   compute_model=compute_model if compute_model is not None else scenario.build_compute_model(),
                   network=network_backend(scenario, nn, npn) if nn * npn > 1 else None,
                   memory_limit_bytes=scenario.memory_limit_bytes(), values=scenario.values.build(),
                   host_bench_us=scenario.host.bench_us, **options)
