"""The cuBLAS workspace PyTorch takes from the caching allocator on a stream's first matmul.

PyTorch keys cuBLAS workspaces by (handle, stream) and handles by thread; on a GPU, backward
runs on autograd's device thread, so it gets a second workspace per stream. Read from PyTorch's
source (``CublasHandlePool.cpp``), not measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from interpose.runtime import RankRuntime

aten = torch.ops.aten

CUBLAS_WORKSPACE_BYTES_SM90 = 32 << 20
"""cuBLAS workspace PyTorch allocates from the caching allocator per (handle, stream)
on sm90 parts (``CublasHandlePool.cpp``'s default ``:4096:8``); 4096*2+16*8 KiB on
others. Read from PyTorch's source, not measured here: one per stream for forward
(main thread) and one for backward (autograd's device thread)."""
CUBLAS_WORKSPACE_BYTES_OTHER = (4096 * 2 + 16 * 8) << 10

MATMUL_PACKETS = {
    aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten._scaled_mm, aten.addmm_, aten.baddbmm_, aten.addbmm,
}  # fmt: skip
"""Op packets that run on cuBLAS and so need the workspace."""


class CublasWorkspaces:
    """One workspace block per (stream, forward/backward), charged on first use."""

    def __init__(self, rt: RankRuntime) -> None:
        self.rt = rt
        self.nbytes = CUBLAS_WORKSPACE_BYTES_SM90 if rt.cfg.gpu.capability[0] >= 9 else CUBLAS_WORKSPACE_BYTES_OTHER
        self._keys: set[tuple[int, bool]] = set()
        self._blocks: list[Any] = []

    def ensure(self) -> None:
        """Charge the current (stream, thread) its workspace unless it has one."""
        key = (self.rt.current_stream.id, torch._C._current_graph_task_id() != -1)
        if key not in self._keys:
            self._keys.add(key)
            self._blocks.append(self.rt.allocator.malloc(self.nbytes))
