"""Fitted family models kept on disk, so that every rank process of a run does not refit them.

Fitting the H200's sweeps (~100k entries) takes ~4 s of CPU; a 128-rank run on a 2-core machine would pay
that 128 times. The fitted models are pickled under :func:`common.paths.cache_dir`, keyed by the content of
every input file, the source code of the families and of the profile reader, the GPU and numpy's version, so that a changed sweep or model
refits. A cache that cannot be read or written is ignored (the models are fitted as before).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.paths import cache_dir

_HERE = Path(__file__).resolve().parent
_SOURCES = [*sorted(_HERE.glob("*.py")), _HERE.parent / "store.py", _HERE.parent / "gpus.py"]
"""The code a fit depends on: the family models, the profile reader, the GPU table (SM counts)."""


def cache_key(files: list[Path], gpu: str | None) -> str:
    h = hashlib.sha256()
    for p in [*files, *_SOURCES]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(f"{gpu}|{np.__version__}".encode())
    return h.hexdigest()[:24]


def load_or_fit(files: list[Path], gpu: str | None, fit: Callable[[], Any]) -> Any:
    """``fit()``'s result for these inputs, from the cache when it holds it (written there otherwise)."""
    try:
        path = cache_dir() / f"families_{gpu}_{cache_key(files, gpu)}.pkl"
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    models = fit()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(models, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: ranks fitting at once each write a whole file
    except OSError:
        pass
    return models
