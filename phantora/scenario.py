"""Scenario files: which GPUs, how many, which compute-time model, which network.

A scenario is a small YAML file (see ``scenarios/``) validated by pydantic so that a typo
becomes ONE line naming the file and the field, e.g.
``scenarios/bad.yaml: gpu: unknown GPU 'h900'; valid: h100, h200``.
Other commands reuse :func:`load_scenario` and print :class:`ScenarioError` as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from common import errors
from common.registry import UnknownVariantError
from netsim.config import ClusterConfig
from phantora.compose import yaml_error_text

if TYPE_CHECKING:
    from netsim.backend import NetworkBackend

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
"""The repository's ``scenarios/`` folder (present in a source checkout / editable install)."""

DEFAULT_SCENARIO_NAME = "h100x1"

# Used when the package is installed without the repository's scenarios/ folder.
_EMBEDDED_DEFAULT = """
name: h100x1
gpu: h100
hosts: 1
gpus_per_host: 1
compute:
  model: roofline
"""


class ScenarioError(Exception):
    """A scenario that cannot be used; ``str()`` is the one line to show the user."""


class ComputeSection(BaseModel):
    """Which compute-time model times GPU ops (a name in ``profiles.COMPUTE_MODELS``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "roofline"
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword options passed to the model's factory."""

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from profiles import COMPUTE_MODELS

        if v not in COMPUTE_MODELS:
            raise ValueError(f"unknown compute model {v!r}; valid: {', '.join(COMPUTE_MODELS.names())}")
        return v


class ValuesSection(BaseModel):
    """Known values on the simulated GPU and the policy for values nobody can know
    (:class:`interpose.values.ValuePolicy`; see "Known values" in interpose/README.md)."""

    model_config = ConfigDict(extra="forbid")

    policy: str = "balanced"
    """``balanced`` | ``uniform`` | ``skewed:<s>``: indices of argmax/topk/sort/multinomial on unknown data
    (MoE routing, decoding)."""
    seed: int = 0
    """Seeds the policy's draws and the simulated GPU's random factories."""
    cap_mib: float = Field(16.0, gt=0, le=4096)
    """Largest storage whose values are kept (MiB); bigger ones read as placeholders."""

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        from interpose.values import ValuePolicy

        ValuePolicy.parse(v)  # ValueError names the valid forms
        return v

    def build(self):
        from interpose.values import ValuePolicy

        return ValuePolicy.parse(self.policy, seed=self.seed, cap_bytes=int(self.cap_mib * 2**20))


class HostSection(BaseModel):
    """The target host's CPU (the host-time model, :mod:`interpose.host_model`)."""

    model_config = ConfigDict(extra="forbid")

    bench_us: float | None = Field(None, gt=0)
    """The target host's ``python -m profiles.hostbench`` figure (µs per unit). ``None``: the replayed
    profiles' recording host (their header's ``host_bench_us``)."""


class Scenario(ClusterConfig):
    """A simulated cluster: ``hosts`` × ``gpus_per_host`` GPUs of one kind.

    The shape and the ``network:`` block (``hosts``, ``gpus_per_host``, ``network``) are netsim's
    :class:`~netsim.config.ClusterConfig`, inherited, so one schema serves both and netsim takes a
    scenario as is; this adds what only a full run needs (the GPU, compute, memory, values).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    """Required here (a cluster file may omit it)."""
    description: str = ""
    gpu: str
    """Key into ``profiles.gpus`` (``h100``, ``h200``)."""
    compute: ComputeSection = Field(default_factory=ComputeSection)
    memory_limit_gib: float | None = Field(None, gt=0)
    """Override of the GPU's memory (GiB); default: the GPU's ``total_memory_bytes``."""
    values: ValuesSection = Field(default_factory=ValuesSection)
    host: HostSection = Field(default_factory=HostSection)
    """Known-value tracking and the value policy (``values.policy``; ``phantora run --values`` overrides)."""
    _source: str = PrivateAttr(default="<scenario>")

    @property
    def source(self) -> str:
        """The file (or ``<scenario>``) this scenario was loaded from: every error names it."""
        return self._source

    @field_validator("memory_limit_gib")
    @classmethod
    def _fits_the_gpu(cls, v: float | None, info: ValidationInfo) -> float | None:
        from profiles.gpus import GPUS

        gpu = info.data.get("gpu")
        if v is None or not isinstance(gpu, str) or gpu not in GPUS:
            return v
        total = GPUS.get(gpu).total_memory_bytes / 2**30
        if not v <= total:  # inf, nan and 1e12 alike
            raise ValueError(f"{v:g} GiB is more than the {gpu}'s {total:.2f} GiB; give a value in "
                             f"(0, {total:.2f}] or leave it out")
        return v

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, v: str) -> str:
        from profiles.gpus import GPUS

        key = v.lower()
        if key not in GPUS:
            raise ValueError(f"unknown GPU {v!r}; valid: {', '.join(GPUS.names())}")
        return key

    def gpu_spec(self):
        """The :class:`profiles.gpus.GpuSpec` of this scenario's GPU."""
        from profiles.gpus import get_gpu

        return get_gpu(self.gpu)

    def memory_limit_bytes(self) -> int | None:
        return None if self.memory_limit_gib is None else int(self.memory_limit_gib * 2**30)

    def build_compute_model(self):
        """The scenario's :class:`profiles.compute.ComputeModel` (bad options → :class:`ScenarioError`)."""
        from profiles import build_compute_model

        try:
            return build_compute_model(self.compute.model, self.gpu_spec(), **self.compute.options)
        except (TypeError, ValueError, UnknownVariantError) as e:
            raise ScenarioError(f"{self.source}: compute.options: {errors.first_line(e)}") from None

    def check_network(self, hosts: int | None = None, gpus_per_host: int | None = None) -> None:
        """Build the scenario's network for ``hosts × gpus_per_host`` (default: the scenario's) and
        raise :class:`ScenarioError` naming the file and field if it cannot be built (cheap: routes
        are computed lazily). A multi-rank run calls this before forking anything."""
        network_backend(self, hosts, gpus_per_host)


def network_backend(scenario: Scenario, hosts: int | None = None, gpus_per_host: int | None = None) -> NetworkBackend:
    """netsim's backend for ``scenario`` (``hosts``/``gpus_per_host`` override its shape); a scenario it
    cannot build is a :class:`ScenarioError` ``<file>: network.<field>: <why>``, never a silent fallback."""
    from netsim.backend import build_network

    try:
        return build_network(scenario, hosts=hosts, gpus_per_host=gpus_per_host)
    except (TypeError, ValueError, KeyError) as e:
        msg = errors.first_line(e)
        field = "" if msg.startswith("network.") else "network: "
        raise ScenarioError(f"{scenario.source}: {field}{msg}") from None


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate YAML ``text``; errors name ``source`` and the field in one line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{source}: {yaml_error_text(e)}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping of fields at the top level")
    return scenario_from_dict(data, source)


def scenario_from_dict(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed (and composed) scenario mapping; errors name ``source``."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(errors.one_line(source, e)) from None
    scenario._source = source
    return scenario


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load and validate a scenario file; ``None`` gives the default (``scenarios/h100x1.yaml``).

    A bare name (``h200x8``) is looked up in the repository's ``scenarios/`` folder.
    """
    if path is None:
        default = SCENARIO_DIR / f"{DEFAULT_SCENARIO_NAME}.yaml"
        if default.is_file():
            path = default
        else:
            return parse_scenario(_EMBEDDED_DEFAULT, f"<embedded {DEFAULT_SCENARIO_NAME}>")
    p = Path(path)
    if not p.exists() and p.suffix == "" and (SCENARIO_DIR / f"{p.name}.yaml").is_file():
        p = SCENARIO_DIR / f"{p.name}.yaml"
    from phantora.compose import ComposeError, resolve_scenario_dict

    try:  # `extends:` chains and their overrides (phantora/compose.py)
        data = resolve_scenario_dict(p, source=str(path))
    except ComposeError as e:
        raise ScenarioError(str(e)) from None
    return scenario_from_dict(data, str(path))
