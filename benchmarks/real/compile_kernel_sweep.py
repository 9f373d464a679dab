"""The bytes model's fit set: compiled pointwise and reduction functions at log-spaced sizes, each
kernel's GPU time recorded as ``compile_kernels.Recorder`` keys it (split ``fit``).

``python3 compile_kernel_sweep.py OUT.jsonl [BUDGET_S]`` on the GPU machine; stops starting new cases
past BUDGET_S wall seconds (default 90).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_kernels import Recorder

CASES = {
    "axpy_relu": (lambda x, y: (x * 2 + y).relu(), 2),
    "gelu": (lambda x: F.gelu(x, approximate="tanh"), 1),
    "layer_norm": (lambda x: F.layer_norm(x, x.shape[-1:]), 1),
    "softmax": (lambda x: torch.softmax(x, -1), 1),
    "row_sum": (lambda x: x.sum(-1), 1),
    "dot_sum": (lambda x, y: (x * y).sum(), 2),
}
ROWS = {12: 256, 15: 512, 18: 1024, 21: 2048, 24: 4096, 26: 8192}
"""log2(elements) -> row length (the last dimension)."""


def main() -> None:
    out = sys.argv[1]
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 90.0
    t0 = time.time()
    rec = Recorder("fit", "sweep")
    for dtype in (torch.bfloat16, torch.float32):
        for name, (fn, n_in) in CASES.items():
            for log_n, row in ROWS.items():
                if time.time() - t0 > budget:
                    print(f"sweep: budget reached at {name} {dtype} 2^{log_n}", flush=True)
                    rec.write(out)
                    return
                args = [torch.randn(2**log_n // row, row, device="cuda", dtype=dtype) for _ in range(n_in)]
                torch._dynamo.reset()
                cf = torch.compile(fn)
                for _ in range(3):
                    cf(*args)
                rec.tag = f"sweep {name} {dtype} 2^{log_n}"
                rec.start()
                for _ in range(5):
                    cf(*args)
                rec.stop()
    rec.write(out)


if __name__ == "__main__":
    main()
