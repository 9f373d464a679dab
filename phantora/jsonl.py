"""JSON Lines input files (a profile, ``op_times.jsonl``, a ``--missing`` list): one object a line,
blank lines skipped, a bad line an error naming ``file:line``. Torch-free."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def records(path: str | Path, lines: Iterable[str], error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` of each non-blank line of ``path``; a line that is not JSON
    raises ``error("<path>:<line>: not JSON (...)")``."""
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}:{i}: not JSON ({e.msg})") from None
