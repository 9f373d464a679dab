"""Scenario composition: ``extends:`` chains and dotted-path overrides, before validation.

A what-if study is "this cluster, but with X changed". Rather than copying a whole
scenario file per variant, a file may say ``extends: ../dgx-h100-railopt.yaml`` and list
only what differs; mappings merge key by key, anything else (scalars, lists) replaces.
Sweeps address fields with dotted paths (``network.fabric.oversubscription``).

Everything here works on plain dicts and never imports torch or pydantic, so every
command that loads a scenario (and ``phantora sweep`` before anything runs) shares it.
Errors are :class:`ComposeError`, whose ``str()`` is one line naming the file and field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

EXTENDS_KEY = "extends"


class ComposeError(ValueError):
    """A scenario that cannot be composed; ``str()`` is the one line to show the user."""



def yaml_error_text(e: yaml.YAMLError) -> str:
    """A YAML parse error as one line with its position: ``YAML syntax error at line L, column C: ...``."""
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"YAML syntax error at {where}{problem}"

def read_yaml_mapping(path: Path, source: str | None = None) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping; errors name ``source`` (default: the path)."""
    src = source or str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ComposeError(f"{src}: cannot read scenario file ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ComposeError(f"{src}: {yaml_error_text(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError(f"{src}: expected a mapping of fields at the top level")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge recursively, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, val in override.items():
        if isinstance(val, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def resolve_scenario_dict(
    path: str | Path, *, source: str | None = None, _chain: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """The scenario at ``path`` as a plain dict with its ``extends:`` chain applied.

    ``extends`` is a path relative to the file that names it (or a list of them, merged in
    order, later ones winning); the file's own fields are laid over the result. A file that
    (indirectly) extends itself is an error naming the cycle.
    """
    p = Path(path)
    key = p.resolve()
    source = source or str(path)
    if key in _chain:
        cycle = " -> ".join(str(c) for c in (*_chain, key))
        raise ComposeError(f"{_chain[-1]}: {EXTENDS_KEY}: cycle: {cycle}")
    data = read_yaml_mapping(p, source)
    parents = data.pop(EXTENDS_KEY, None)
    if parents is None:
        return data
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not parents or not all(isinstance(x, str) for x in parents):
        raise ComposeError(f"{source}: {EXTENDS_KEY}: expected a file path or a list of file paths")
    merged: dict[str, Any] = {}
    for parent in parents:
        target = p.parent / parent
        if not target.is_file():
            raise ComposeError(f"{source}: {EXTENDS_KEY}: no such file {parent!r} (looked in {p.parent})")
        merged = deep_merge(merged, resolve_scenario_dict(target, _chain=(*_chain, key)))
    return deep_merge(merged, data)


def check_no_conflicts(paths: Iterable[str], source: str, where: str) -> None:
    """Refuse two overrides of the same field, or of a field and something inside it."""
    seen: list[str] = []
    for dotted in paths:
        if not dotted or any(part == "" for part in dotted.split(".")):
            raise ComposeError(f"{source}: {where}: {dotted!r}: empty field name in dotted path")
        for other in seen:
            if dotted == other:
                raise ComposeError(f"{source}: {where}.{dotted}: set more than once")
            if dotted.startswith(other + ".") or other.startswith(dotted + "."):
                raise ComposeError(f"{source}: {where}.{dotted}: conflicts with override of {other!r}")
        seen.append(dotted)


def set_dotted(data: dict[str, Any], dotted: str, value: Any, *, source: str, where: str) -> None:
    """Set ``data[a][b][c] = value`` for ``dotted == "a.b.c"``, creating missing mappings."""
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            prefix = ".".join(parts[: i + 1])
            raise ComposeError(f"{source}: {where}.{dotted}: {prefix!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``data[a][b][c]`` for ``"a.b.c"``, or ``default`` when any step is missing."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, Any], *, source: str = "<overrides>", where: str = "set"
) -> dict[str, Any]:
    """A copy of ``data`` with each dotted-path override set (conflicting overrides refused)."""
    check_no_conflicts(overrides, source, where)
    out = copy.deepcopy(dict(data))
    for dotted, value in overrides.items():
        set_dotted(out, dotted, value, source=source, where=where)
    return out


def short_name(dotted: str) -> str:
    """Display name of a dotted field: ``network.fabric.oversubscription`` → ``oversubscription``,
    ``network.transport.name`` → ``transport``."""
    parts = dotted.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]
