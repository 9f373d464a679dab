"""A CUDA device guard and CUDA hooks for fake cuda tensors that never reach a CUDA driver.

CPU builds of torch have no CUDA guard: autograd looks one up for every cuda tensor
that requires grad and *aborts the process*. CUDA builds have the real one, and it
(like their CUDA hooks) calls the driver: on a machine without a GPU the first
``.cuda()`` of a parameter fails with "CUDA driver version is insufficient". So on
both builds we compile a small shim (``_cuda_guard.cpp``) against the installed
torch headers once, cache the shared object under ``~/.cache/phantora`` (keyed by
torch version, so the CPU and CUDA builds each get their own), and call it through
ctypes: while the shim is installed, c10's ``FakeGuardImpl<CUDA>`` is the CUDA guard
and the CUDA hooks report CUDA present, the simulated GPU's compute capability and
the build's cuDNN (none on CPU builds).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from common.paths import cache_dir

_SRC = Path(__file__).with_name("_cuda_guard.cpp")


class CudaGuardBuildError(RuntimeError):
    """The C++ guard shim could not be compiled (no C++ compiler?)."""


def _build() -> Path:
    torch_dir = Path(torch.__file__).parent
    src = _SRC.read_bytes()
    tag = hashlib.sha1(src + torch.__version__.encode() + sys.version.encode()).hexdigest()[:12]
    out = cache_dir() / f"cuda_guard_{tag}.so"
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


_BUILD_HOOKS, _SIM_HOOKS, _NO_CUDA_HOOKS = 0, 1, 2  # phantora_set_sim_cuda's modes (_cuda_guard.cpp)


def _set(mode: int) -> bool:
    assert _lib is not None
    return bool(_lib.phantora_set_sim_cuda(mode))


def _build_info() -> tuple[int, int, int, float]:
    """(CUDNN_VERSION, cudnnGetVersion(), CUDA_VERSION, CUDNN_BN_MIN_EPSILON) of this build; zeros on
    CPU builds. None of these calls the CUDA driver."""
    if not torch.backends.cuda.is_built():
        return 0, 0, 0, 0.0
    cudart = int(torch._C._cuda_getCompiledVersion())
    if not getattr(torch._C, "_has_cudnn", False):
        return 0, 0, cudart, 0.0
    major, minor, patch = torch._C._cudnn.getCompileVersion()
    compiled = major * 10000 + minor * 100 + patch if major >= 9 else major * 1000 + minor * 100 + patch
    runtime = int(torch._C._cudnn.getVersionInt())
    return compiled, runtime, cudart, 0.0 if major >= 8 else 1e-5


def ensure_cuda_guard(capability: tuple[int, int] = (9, 0)) -> None:
    """Make the fake CUDA device guard the CUDA guard and the CUDA hooks the simulated ones,
    for a simulated GPU of compute ``capability`` (idempotent).

    CPU builds keep the fake guard for the life of the process (fake cuda tensors may
    outlive the shim, and there is no other); :func:`release_cuda_hooks` switches the
    hooks back, and on CUDA builds the build's own guard.
    """
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(str(_build()), mode=ctypes.RTLD_GLOBAL)
        _lib.phantora_configure.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                                            ctypes.c_double]
    _lib.phantora_configure(int(capability[0]), *_build_info())
    if not _set(_SIM_HOOKS):
        raise CudaGuardBuildError("could not switch the CUDA hooks to the simulated ones")


def set_guard_device(index: int) -> None:
    """Make C++'s current CUDA device ``index`` (the fake guard's; it fills the index of
    ``Tensor.cuda()`` / ``.to("cuda")``). No-op before the guard is installed."""
    if _lib is not None:
        _lib.phantora_set_guard_device(int(index))


def release_cuda_hooks() -> None:
    """Give the build its own CUDA hooks back (``at::hasCUDA()`` false again on CPU builds), and
    on CUDA builds its own CUDA guard; a CPU build keeps the fake guard."""
    if _lib is not None:
        _set(_BUILD_HOOKS)


@contextlib.contextmanager
def no_cuda_hooks() -> Iterator[None]:
    """While simulating: for the body, C++ sees no CUDA at all (``at::hasCUDA()`` false, the
    stub hooks), then the simulated GPU again. For C++ that starts real CUDA machinery when
    it sees CUDA present: the profiler initialises CUPTI (the driver) then."""
    assert _lib is not None
    _set(_NO_CUDA_HOOKS)
    try:
        yield
    finally:
        _set(_SIM_HOOKS)
