"""A loaded study: a sweep file expanded into points whose scenarios are composed and validated
*before* anything runs, so a typo fails in one line instead of an hour into the sweep.

A study file (see ``scenarios/studies/``) names a base scenario, fixed overrides, and a
``sweep:`` block (a ``grid`` = cartesian product, or a ``list`` of override sets) over dotted
scenario fields. The point id is a stable hash of its overrides, so reordering a grid reuses results.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.errors import one_line
from phantora.compose import (
    EXTENDS_KEY,
    ComposeError,
    apply_overrides,
    check_no_conflicts,
    read_yaml_mapping,
    resolve_scenario_dict,
    short_name,
)
from phantora.sweep.kinds import POINT_KINDS, PointKind
from phantora.sweep.schema import StudyFile, SweepError, SweepSection


@dataclass(frozen=True)
class Point:
    """One scenario of a study: its overrides (dotted field → value) and the composed scenario."""

    overrides: dict[str, Any]
    scenario: dict[str, Any] = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        return point_id(self.overrides)

    def label(self) -> str:
        return ", ".join(f"{short_name(k)}={v}" for k, v in self.overrides.items())


def point_id(overrides: dict[str, Any]) -> str:
    """Stable 12-hex-digit id of a set of overrides (independent of their order)."""
    blob = json.dumps(overrides, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Study:
    """A loaded, validated study: every point's scenario is already checked."""

    path: Path
    spec: StudyFile
    points: list[Point]
    swept: list[str]
    """The dotted fields that vary across points, in file order (the table's key columns)."""

    @property
    def kind(self) -> PointKind:
        return POINT_KINDS.get(self.spec.study.command)

    def script_path(self) -> str | None:
        s = self.spec.study.script
        if s is None:
            return None
        near = self.path.parent / s
        return str(near.resolve()) if near.exists() else str(Path(s).resolve())


def _expand(sweep: SweepSection, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    if sweep.grid is not None:
        if not sweep.grid:
            raise SweepError(f"{source}: sweep.grid: empty grid (no fields to sweep)")
        for name, values in sweep.grid.items():
            if not values:
                raise SweepError(f"{source}: sweep.grid.{name}: empty list of values")
        check_no_conflicts(sweep.grid, source, "sweep.grid")
        fields = list(sweep.grid)
        combos = itertools.product(*(sweep.grid[n] for n in fields))
        return [dict(zip(fields, c, strict=True)) for c in combos], fields
    assert sweep.list_ is not None
    if not sweep.list_:
        raise SweepError(f"{source}: sweep.list: empty list of points")
    names: list[str] = []
    for i, entry in enumerate(sweep.list_):
        if not entry:
            raise SweepError(f"{source}: sweep.list[{i}]: empty point")
        check_no_conflicts(entry, source, f"sweep.list[{i}]")
        names.extend(n for n in entry if n not in names)
    return [dict(e) for e in sweep.list_], names


def validate_scenario(data: dict[str, Any], source: str, *, network: bool | None = None) -> None:
    """Validate a composed scenario the way ``phantora run`` will (raises :class:`SweepError`):
    the schema and every registry name, and, when ``network`` (default: more than one GPU), that
    netsim can build its network."""
    from phantora.scenario import ScenarioError, scenario_from_dict

    try:
        scenario = scenario_from_dict(data, source)
        if network or (network is None and scenario.world_size > 1):
            scenario.check_network()
    except ScenarioError as e:
        raise SweepError(str(e)) from None
    net = data.get("network")
    if net is not None:
        validate_network(net, source)


def validate_network(net: Any, source: str) -> None:
    """Check the ``network`` section against netsim's schema when netsim provides one."""
    try:
        from netsim.config import NetworkConfig  # type: ignore[import-not-found]
    except ImportError:
        return
    validate = getattr(NetworkConfig, "model_validate", None)
    if validate is None:
        return
    try:
        validate(net)
    except ValidationError as e:
        msg = one_line(source, e)
        head, _, rest = msg.partition(": ")
        raise SweepError(f"{head}: network.{rest}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise SweepError(f"{source}: network: {e}") from None


def load_study(path: str | Path) -> Study:
    """Parse, compose and validate every point of a study file (raises :class:`SweepError`)."""
    p = Path(path)
    source = str(path)
    try:
        raw = read_yaml_mapping(p, source)
    except ComposeError as e:
        raise SweepError(str(e)) from None
    if EXTENDS_KEY in raw:
        if "base" in raw:
            raise SweepError(f"{source}: extends: give either 'base' or 'extends', not both")
        raw["base"] = raw.pop(EXTENDS_KEY)
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as e:
        raise SweepError(one_line(source, e)) from None
    if spec.study.command not in POINT_KINDS:
        raise SweepError(f"{source}: study.command: unknown command {spec.study.command!r}; "
                         f"valid: {', '.join(POINT_KINDS.names())}")
    if spec.base is None:
        base: dict[str, Any] = {}
    else:
        base_path = p.parent / spec.base
        if not base_path.is_file():
            raise SweepError(f"{source}: base: no such file {spec.base!r} (looked in {p.parent})")
        try:
            base = resolve_scenario_dict(base_path)
        except ComposeError as e:
            raise SweepError(str(e)) from None
    try:
        combos, swept = _expand(spec.sweep, source)
        fixed = apply_overrides(base, spec.set, source=source, where="set")
    except ComposeError as e:
        raise SweepError(str(e)) from None
    for name in swept:
        if name in spec.set or any(name.startswith(s + ".") or s.startswith(name + ".") for s in spec.set):
            raise SweepError(f"{source}: sweep.{name}: also given in 'set' (conflicting overrides)")
    where = "sweep.grid" if spec.sweep.grid is not None else "sweep.list"
    points: list[Point] = []
    for combo in combos:
        try:
            scen = apply_overrides(fixed, combo, source=source, where=where)
        except ComposeError as e:
            raise SweepError(str(e)) from None
        scen.setdefault("name", spec.study.name)
        scen["name"] = f"{scen['name']}[{', '.join(f'{k}={v}' for k, v in combo.items())}]"
        _validate_point(scen, combo, source, where, network=True if spec.study.command == "netbench" else None)
        pt = Point(combo, scen)
        if any(q.id == pt.id for q in points):
            raise SweepError(f"{source}: {where}: the point {combo} appears twice")
        points.append(pt)
    study = Study(p, spec, points, swept)
    study.kind.check(study)
    return study


def _validate_point(scen: dict[str, Any], combo: dict[str, Any], source: str, where: str,
                    network: bool | None = None) -> None:
    """Validate one point; an error about a swept field is reported as ``sweep.grid.<field>``."""
    marker = "\x00point"
    try:
        validate_scenario(scen, marker, network=network)
    except SweepError as e:
        rest = str(e).removeprefix(marker + ": ")
        loc, _, what = rest.partition(": ")
        for name in combo:
            if loc == name or loc.startswith(name + ".") or name.startswith(loc + "."):
                raise SweepError(f"{source}: {where}.{name}: {what}") from None
        raise SweepError(f"{source}: {rest} (point {point_id(combo)}: {combo})") from None
