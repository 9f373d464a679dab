"""What one simulated rank needs to know (:class:`RankConfig`) and what it reports (:class:`RankResult`).

Both are plain dataclasses so the run engineer can pickle a result across a
process boundary; nothing here imports the shim itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from interpose.values import ValuePolicy

if TYPE_CHECKING:
    from profiles.compute import ComputeModel
    from profiles.gpus import GpuSpec

HostTime = Literal["measured", "zero"]


@dataclass(kw_only=True)
class RankConfig:
    """One rank's identity and simulated hardware."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    gpu: GpuSpec
    """The simulated GPU (``profiles.get_gpu("h100")``)."""
    compute_model: ComputeModel
    """Times every GPU op (``profiles.build_compute_model("roofline", gpu)``)."""
    memory_limit_bytes: int | None = None
    """Simulated GPU memory; ``None`` means ``gpu.total_memory_bytes``."""
    host_time: HostTime = "measured"
    """``measured``: the script's own CPU time advances the host clock; ``zero``: only
    launch overheads do (deterministic, for tests and CI)."""
    start_time_us: float = 0.0
    """Simulated time when the script starts."""
    host_bench_us: float | None = None
    """The target host's :func:`profiles.hostbench.host_bench_us` figure (scales ``measured``
    script time, :mod:`interpose.host_model`); ``None``: take it from the replayed profile."""
    values: ValuePolicy = field(default_factory=ValuePolicy)
    """Known-value tracking and the policy for values nobody knows (:mod:`interpose.values`)."""
    compile: str = "inductor"
    """What ``torch.compile`` does (:mod:`interpose.compile`): ``inductor`` simulates the compiled program,
    ``eager`` returns the function unchanged (its eager ops are simulated)."""

    def limit_bytes(self) -> int:
        return self.memory_limit_bytes if self.memory_limit_bytes is not None else self.gpu.total_memory_bytes


@dataclass(slots=True)
class OpRecord:
    """One GPU op as queued on a simulated stream (times in simulated microseconds)."""

    rank: int
    stream: int
    op: str
    """Dispatcher overload name, e.g. ``aten.mm.default`` (same as ``profiles.signature_of``)."""
    shapes: str
    dtype: str
    start_us: float
    dur_us: float
    source: str
    """``profile`` / ``roofline`` / ``none`` (from ``OpTiming.source``) or ``external``."""


@dataclass
class RankResult:
    """Everything one rank's run reports; picklable."""

    rank: int = 0
    ops: list[OpRecord] = field(default_factory=list)
    iterations: list[tuple[float, float]] = field(default_factory=list)
    """(start_us, end_us) of each iteration: delimited by outermost optimizer steps, or, in a program that
    steps no optimizer, by outermost module forwards (``iteration_kind``)."""
    iteration_kind: str = "optimizer_step"
    """``optimizer_step``, ``forward`` (no optimizer step: one iteration per outermost module forward,
    e.g. per generated token) or ``none`` (neither happened)."""
    peak_allocated_bytes: int = 0
    peak_reserved_bytes: int = 0
    gpu_busy_us: float = 0.0
    end_time_us: float = 0.0
    exit_code: int = 0
    error: str | None = None
    """Formatted traceback (user frames) of an exception the script raised, else ``None``."""
    oom: bool = False
    """True when the script died of a simulated ``torch.cuda.OutOfMemoryError``."""
    syncs: int = 0
    """Host-device synchronisations (``.item()``, ``synchronize`` ...)."""
    host_model: dict = field(default_factory=dict)
    """How host time was counted: ``mode`` and, when ``measured``, the
    :class:`interpose.host_model.HostScale` fields (factor, both benchmark figures, source)."""
    op_keys: list[str] = field(default_factory=list)
    """Signature keys of the kernel-launching ops in call order (the simulated side of
    ``phantora conformance``; same keys as ``phantora profile --trace`` on a GPU)."""
    op_key_times: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Per key in ``op_keys``: simulated GPU time (us) and timing source."""
    compile: dict = field(default_factory=dict)
    """What ``torch.compile`` did (:class:`interpose.compile.CompileStats`: graph breaks, compile wall time)."""
    missing_signatures: list[dict] = field(default_factory=list)
    """Op signatures the compute model had no measurement for (input of ``phantora profile --kernels-only``)."""
