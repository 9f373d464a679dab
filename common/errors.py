"""One format for configuration errors: ``<file>: <field.path>: <message>`` on one line.

Scenarios, netsim cluster files and sweep studies are all pydantic models; a user who
mistypes a field should get the same kind of line from each, naming the file and the field.
"""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("network", "transport", "name")`` -> ``network.transport.name`` (pydantic's ``list_`` -> ``list``)."""
    return ".".join("list" if p == "list_" else str(p) for p in loc) or "(top level)"


def one_line(source: str, err: ValidationError) -> str:
    """The first error of ``err`` as ``source: field: message``, counting the others."""
    errors = err.errors()
    first = errors[0]
    msg = "unknown field" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    more = len(errors) - 1
    return f"{source}: {field_path(first['loc'])}: {msg}" + (f" (and {more} more)" if more else "")
