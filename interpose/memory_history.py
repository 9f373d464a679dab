"""``torch.cuda.memory._record_memory_history`` / ``_snapshot`` for the simulated allocator.

Why: PyTorch's own memory tooling (``_dump_snapshot`` and the viewer at pytorch.org/memory_viz) is
how users find what holds memory at the peak; a snapshot of the simulated GPU in the same format
lets them do that for the cluster they do not have, and lets us compare the simulated allocation
stream with the one a real GPU records, block by block (``benchmarks/memory_diff.py``).

What is recorded: every block the allocator model hands out or takes back (``alloc``,
``free_completed``, with the requested size as PyTorch's trace has it) and every segment it reserves or releases (``segment_alloc``,
``segment_free``), with the Python frames of the call (``stacks="python"`` of the real API; the
shim's own frames are left out). Frees take effect at once (no cross-stream deferral), so there is
no ``free_requested``. The ring buffer of ``max_entries`` behaves as the real one.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import Any

_SHIM_DIRS = tuple(os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + d + os.sep for d in ("interpose", "profiles"))
"""Frames of the simulator itself: a real GPU's stack has no such frames."""


class MemoryHistory:
    """The trace the allocator model appends to while recording is on (see module doc)."""

    def __init__(self) -> None:
        self.enabled = False
        self.frames = True
        self.trace: deque[dict[str, Any]] = deque()
        self.block_frames: dict[int, list[dict[str, Any]]] = {}
        """Frames of each live block's allocation, by address (the snapshot's ``blocks[].frames``)."""
        self.now_us = lambda: 0.0

    def configure(self, enabled: Any = "all", context: Any = "all", max_entries: int = sys.maxsize,
                  clear_history: bool = False, **_: Any) -> None:  # fmt: skip
        """``_record_memory_history(enabled, context, stacks, max_entries, ..., clear_history)``;
        the legacy boolean form (``enabled=True``) means ``"all"``."""
        if enabled is True:
            enabled = "all"
        self.enabled = enabled in ("all", "state")
        self.frames = context is not None
        if clear_history or not self.enabled:
            self.trace.clear()
        if self.trace.maxlen != max_entries:
            self.trace = deque(self.trace, maxlen=None if max_entries >= sys.maxsize else max(1, max_entries))
        if not self.enabled:
            self.block_frames.clear()

    def record(self, action: str, addr: int, size: int) -> None:
        frames = _python_frames() if self.frames and action in ("alloc", "free_completed") else []
        if action == "alloc":
            self.block_frames[addr] = frames
        elif action == "free_completed":
            self.block_frames.pop(addr, None)
        self.trace.append(
            {"action": action, "addr": addr, "size": size, "stream": 0, "time_us": self.now_us(), "frames": frames}
        )

    def snapshot(self, allocator: Any, device: int = 0) -> dict[str, Any]:
        """The ``_snapshot()`` dict: segments with their blocks, and this device's trace."""
        segments = []
        for seg in allocator.segments():
            blocks, b, allocated = [], seg.head, 0
            while b is not None:
                state = "inactive" if b.free else "active_allocated"
                if not b.free:
                    allocated += b.size
                frames = self.block_frames.get(b.addr, []) if not b.free else []
                blocks.append({"address": b.addr, "size": b.size, "requested_size": b.requested, "state": state,
                               "frames": frames})  # fmt: skip
                b = b.next
            segments.append({
                "device": device, "address": seg.addr, "total_size": seg.size, "allocated_size": allocated,
                "active_size": allocated, "requested_size": allocated, "stream": 0,
                "segment_type": "small" if seg.small else "large", "segment_pool_id": (0, 0),
                "is_expandable": False, "frames": [], "blocks": blocks,
            })  # fmt: skip
        traces: list[list[dict[str, Any]]] = [[] for _ in range(device)] + [list(self.trace)]
        return {"segments": segments, "device_traces": traces, "allocator_settings": {}}


def _python_frames(limit: int = 64) -> list[dict[str, Any]]:
    """The caller's Python stack, innermost first as in PyTorch's traces, without the shim's frames."""
    out: list[dict[str, Any]] = []
    f = sys._getframe(2)
    while f is not None and len(out) < limit:
        name = f.f_code.co_filename
        if not name.startswith(_SHIM_DIRS):
            out.append({"filename": name, "line": f.f_lineno, "name": f.f_code.co_name})
        f = f.f_back  # type: ignore[assignment]
    return out
