"""interpose: the in-rank shim that runs an unmodified PyTorch script on a simulated GPU.

Public API (see README.md)::

    from interpose import RankConfig, RankResult, run_script, interposed
"""

from interpose.config import OpRecord, RankConfig, RankResult
from interpose.runner import install, interposed, run_script, uninstall

__all__ = ["OpRecord", "RankConfig", "RankResult", "install", "interposed", "run_script", "uninstall"]
