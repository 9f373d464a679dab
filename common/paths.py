"""Where phantora keeps what it builds or fits once per machine (the CUDA guard shim, fitted kernel models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PHANTORA_CACHE``, else ``$XDG_CACHE_HOME/phantora``, else ``~/.cache/phantora``."""
    root = os.environ.get("PHANTORA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "phantora"
    )
    return Path(root)
