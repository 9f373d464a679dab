"""Make autograd accept cuda tensors on CPU-only PyTorch builds.

Autograd looks up c10's CUDA device guard for every cuda tensor that requires
grad; a CPU build has none and *aborts the process*. We compile a 20-line shim
(``_cuda_guard.cpp``) against the installed torch headers once, cache the
shared object under ``~/.cache/phantora`` (keyed by torch version), and call it
through ctypes. On a CUDA build the guard exists and nothing is done.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch

_SRC = Path(__file__).with_name("_cuda_guard.cpp")


class CudaGuardBuildError(RuntimeError):
    """The C++ guard shim could not be compiled (no C++ compiler?)."""


def _cache_dir() -> Path:
    root = os.environ.get("PHANTORA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "phantora"
    )
    return Path(root)


def _build() -> Path:
    torch_dir = Path(torch.__file__).parent
    src = _SRC.read_bytes()
    tag = hashlib.sha1(src + torch.__version__.encode() + sys.version.encode()).hexdigest()[:12]
    out = _cache_dir() / f"cuda_guard_{tag}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [
        os.environ.get("CXX", "c++"),
        "-O1", "-shared", "-fPIC", "-std=c++20", "-w",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        "-I", str(torch_dir / "include"),
        str(_SRC), "-o", str(tmp),
        "-L", str(torch_dir / "lib"), "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{torch_dir / 'lib'}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise CudaGuardBuildError(f"no C++ compiler to build the fake CUDA guard: {e}") from None
    if proc.returncode != 0:
        raise CudaGuardBuildError(f"building {_SRC.name} failed:\n{proc.stderr[-2000:]}")
    os.replace(tmp, out)
    return out


_lib: ctypes.CDLL | None = None


def _set(on: bool) -> bool:
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(str(_build()), mode=ctypes.RTLD_GLOBAL)
    return bool(_lib.phantora_set_sim_cuda(1 if on else 0))


def ensure_cuda_guard() -> None:
    """Install the fake CUDA device guard and simulated CUDA hooks (idempotent).

    The guard stays for the life of the process (fake cuda tensors may outlive
    the shim); the hooks are switched back by :func:`release_cuda_hooks`.
    """
    if torch.backends.cuda.is_built():
        return
    if not _set(True):
        raise CudaGuardBuildError("could not switch the CUDA hooks to the simulated ones")


def set_guard_device(index: int) -> None:
    """Make C++'s current CUDA device ``index`` (CPU builds: the fake guard's; it fills the
    index of ``Tensor.cuda()`` / ``.to("cuda")``). No-op before the guard is installed."""
    if _lib is not None and not torch.backends.cuda.is_built():
        _lib.phantora_set_guard_device(int(index))


def release_cuda_hooks() -> None:
    """Make ``at::hasCUDA()`` false again (CPU builds only); the guard stays."""
    if _lib is not None and not torch.backends.cuda.is_built():
        _set(False)
