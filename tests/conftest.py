"""Shared pytest fixtures and test ordering."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Modules that run `phantora run` in-process, so the rank is os.fork()ed from the pytest process.
# A forked child cannot run autograd once the parent has started autograd's worker threads
# ("Unable to handle autograd's threading in combination with fork-based multiprocessing"), and
# many other tests run backward in-process. The CLI itself never runs backward before forking,
# so only the test process is affected: run these modules first.
FORK_FIRST = ("test_run_cli.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in FORK_FIRST)  # stable: order kept otherwise
    cuda_build_only = [item for item in items if item.get_closest_marker("cudabuild")]
    if cuda_build_only:
        import torch

        if not torch.backends.cuda.is_built():
            skip = pytest.mark.skip(reason=f"needs the CUDA build of torch (this is {torch.__version__}); "
                                           ".ci/run runs these in a second venv with PyPI's torch")
            for item in cuda_build_only:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_torch_flags():
    """Process-wide matmul/cuDNN flags a test (or a script it runs in-process) sets stay its own: they
    enter op signature keys (``tf32=True``), so a leak changes later tests' results."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision())
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[:3]
    torch.set_float32_matmul_precision(saved[3])


@pytest.fixture
def repo_root() -> Path:
    return REPO


def roofline_cfg(gpu_key: str = "h100", **overrides):
    """A one-rank config of ``gpu_key`` with the roofline model and zero host time (deterministic)."""
    import profiles
    from interpose import RankConfig

    gpu = profiles.get_gpu(gpu_key)
    return RankConfig(gpu=gpu, compute_model=profiles.build_compute_model("roofline", gpu), host_time="zero",
                      **overrides)


def h100_roofline_cfg(**overrides):
    return roofline_cfg("h100", **overrides)


@pytest.fixture
def cfg():
    return h100_roofline_cfg()


@pytest.fixture
def rt(cfg):
    """The shim installed with ``cfg`` for the test's duration."""
    from interpose import interposed

    with interposed(cfg) as r:
        yield r
