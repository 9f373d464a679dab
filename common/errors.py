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


def first_line(e: BaseException, *, with_type: bool = False) -> str:
    """The first line of ``e``'s message (its type's name when it has none), ``Type: line`` with
    ``with_type``: what a one-line error shows of an exception raised below it."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    line = text.splitlines()[0]
    return f"{type(e).__name__}: {line}" if with_type else line
