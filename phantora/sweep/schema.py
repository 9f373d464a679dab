"""The study file's schema (pydantic): what each point runs, the sweep, the fixed overrides."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SweepError(Exception):
    """A study that cannot run; ``str()`` is the one line to show the user."""


class StudySection(BaseModel):
    """What each point runs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    command: str = "run"
    """A name in :data:`POINT_KINDS`: ``run`` (a full simulated training run) or ``netbench``."""
    script: str | None = None
    """Training script for ``run`` (relative to the study file, else to the current directory)."""
    script_args: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    """Extra options for the phantora subcommand (e.g. netbench's ``--op all_reduce``)."""
    timeout_s: float = Field(3600.0, gt=0)
    """Wall-clock limit of one point; a point past it is recorded as failed."""


class SweepSection(BaseModel):
    """Either a cartesian ``grid`` of values per dotted field, or an explicit ``list`` of points."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Any]] | None = None
    list_: list[dict[str, Any]] | None = Field(None, alias="list")

    @model_validator(mode="after")
    def _one_kind(self) -> SweepSection:
        if (self.grid is None) == (self.list_ is None):
            raise ValueError("give exactly one of 'grid' or 'list'")
        return self


class StudyFile(BaseModel):
    """The top level of a study file."""

    model_config = ConfigDict(extra="forbid")

    study: StudySection
    base: str | None = None
    """Base scenario path (relative to the study file); ``extends:`` is accepted as a synonym."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Dotted-path overrides applied to every point."""
    sweep: SweepSection

    @field_validator("base")
    @classmethod
    def _nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("empty path")
        return v
