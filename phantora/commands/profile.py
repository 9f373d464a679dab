"""``phantora profile``: record kernel timings of a script on a real GPU (or profile missing signatures).

Runs on the GPU box as ``PYTHONPATH=. python3 -m phantora profile ...``, so it
imports only torch, click, rich and the ``profiles`` package (no pydantic).
"""

from __future__ import annotations

import json
import runpy
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

if TYPE_CHECKING:
    from profiles.store import ProfileEntry


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _detect_gpu(device: str) -> str:
    import torch

    from profiles.gpus import GPUS

    if device != "cuda" or not torch.cuda.is_available():
        return device
    name = torch.cuda.get_device_name()
    for key in GPUS:
        if GPUS.get(key).name == name:
            return key
    raise click.UsageError(f"GPU {name!r} is not in profiles.gpus; pass --gpu-name")


def _save(out: Path, header, entries, merge: bool) -> int:
    from profiles.store import read_profile, write_profile

    merged: dict[str, ProfileEntry] = {}
    if merge and out.exists():
        old_header, merged = read_profile(out)
        if old_header.gpu != header.gpu:
            raise click.ClickException(f"{out}: field 'gpu' is {old_header.gpu!r}, this run is {header.gpu!r}")
        header.source = f"{old_header.source}; {header.source}"
    merged.update({e.key: e for e in entries})
    write_profile(out, header, merged.values())
    return len(merged)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", required=False, type=click.Path(dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--gpu-name", help="GPU key to file the profile under (h100, h200); default: detected.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Profile file to write (.jsonl or .jsonl.gz).")
@click.option("--merge/--no-merge", default=True, show_default=True, help="Merge into an existing --out (new entries win).")
@click.option("--kernels-only", "missing", type=click.Path(dir_okay=False), help="Profile the signatures in this missing-signatures file (from a simulated run) on random inputs instead of running a script.")
@click.option("--world-size", default=1, show_default=True, help="Run as rank 0 of this many ranks; the script's process group becomes a fake one whose collectives return at once, so compute ops get their per-rank shapes on one GPU.")
@click.option("--runs", "runs_file", type=click.Path(dir_okay=False), help="Record several runs in one process: one 'WORLD_SIZE SCRIPT ARGS...' per line ('#' comments).")
@click.option("--cache", type=click.Path(dir_okay=False), help="Also add the entries to this SQLite profile cache.")
@click.option("--repeats", default=7, show_default=True, help="Timed runs per signature (median kept).")
@click.option("--warmup", default=2, show_default=True, help="Untimed runs per signature before timing.")
@click.option("--device", default="cuda", show_default=True, help="'cpu' only for dry runs of the recorder.")
@click.option("--trace", type=click.Path(), help="Also write the keys of every recorded op in call order (gzip text) for profiles.timeline; with --runs a directory of runNN.gz.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON lines.")
def profile(
    script: str | None,
    script_args: tuple[str, ...],
    gpu_name: str | None,
    out: str | None,
    merge: bool,
    missing: str | None,
    world_size: int,
    runs_file: str | None,
    cache: str | None,
    repeats: int,
    warmup: int,
    device: str,
    trace: str | None,
    as_json: bool,
) -> None:
    """Record kernel timings: run SCRIPT [ARGS] for real under a recorder (options go before SCRIPT).

    \b
      phantora profile --gpu-name h100 --out profiles/data/h100/gpt.jsonl examples/gpt/train.py --steps 3
      phantora profile --gpu-name h100 --kernels-only results/missing.jsonl --cache ~/.cache/phantora/profiles.sqlite
    """
    import torch

    from profiles.recorder import KernelRecorder, environment_header, profile_specs

    if (script is not None) + (missing is not None) + (runs_file is not None) != 1:
        raise click.UsageError("give one of SCRIPT, --runs FILE or --kernels-only FILE")
    if out is None and cache is None:
        raise click.UsageError("give --out and/or --cache")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.ClickException("no CUDA GPU here: profiling needs one (use --device cpu for a dry run)")
    gpu = gpu_name.lower() if gpu_name else _detect_gpu(device)

    failures: dict[str, str]
    from profiles.hostbench import measure_host_bench_us

    # The recording host's CPU speed (the host-time model scales the script's Python by it):
    # measured before and after recording, the smaller kept (a noisy neighbour only slows it).
    bench_before = measure_host_bench_us()
    extra: dict[str, object] = {"launch_method": "steady"} if device == "cuda" else {}
    if missing is not None:
        specs = _read_specs(Path(missing))
        entries, failures = profile_specs(specs, device=device, repeats=repeats, warmup=warmup)
        source = f"kernels-only {Path(missing).name}"
    else:
        runs = _read_runs(Path(runs_file)) if runs_file else [(world_size, cast(str, script), list(script_args))]
        for _, path, _ in runs:
            if not Path(path).is_file():
                raise click.ClickException(f"{path}: no such script")
        recorder = KernelRecorder(device_type=device, repeats=repeats, warmup=warmup)
        extra["mode_overhead_us"] = round(recorder.calibrate(), 3)
        extra["launch_offset_us"] = round(recorder.launch_offset_us, 3)
        failed_runs = []
        for i, (world, path, argv) in enumerate(runs):
            start = len(recorder.trace)
            if _run_script(recorder, path, argv, world):
                failed_runs.append(path)
            if trace is not None:
                name = trace if runs_file is None else str(Path(trace) / f"run{i:02d}.gz")
                _write_trace(Path(name), recorder.trace[start:])
        if len(failed_runs) == len(runs):
            raise click.ClickException(f"{', '.join(failed_runs)} failed; nothing written")
        entries, failures = recorder.entries(), recorder.failures
        source = "; ".join(f"world={w} " + " ".join([Path(p).as_posix(), *a]) for w, p, a in runs)

    extra["host_bench_us"] = round(min(bench_before, measure_host_bench_us()), 3)
    header = environment_header(gpu, source)
    header.extra.update(extra)
    rows = []
    if out is not None:
        total = _save(Path(out), header, entries, merge)
        rows.append({"target": out, "recorded": len(entries), "failed": len(failures), "entries_in_file": total})
    if cache is not None:
        from profiles.cache import ProfileCache

        c = ProfileCache(cache)
        c.put_many(gpu, entries)
        rows.append({"target": cache, "recorded": len(entries), "failed": len(failures), "entries_in_file": len(c)})
        c.close()
    for key, why in sorted(failures.items()):
        click.echo(f"not profiled: {key}: {why}", err=True)
    _print(rows, as_json, gpu)


def _write_trace(path: Path, keys: list[str]) -> None:
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(keys) + "\n")


def _run_script(recorder, script: str, script_args: list[str], world_size: int) -> int:
    """Run one script as ``__main__`` under the recorder, as rank 0 of a fake process group; returns its status."""
    import gc

    import torch

    argv, path0 = sys.argv, sys.path[0]
    sys.argv = [script, *script_args]
    sys.path[0] = str(Path(script).resolve().parent)
    code = 0
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    restore = _fake_distributed(world_size)
    try:
        with recorder:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:  # stopped (e.g. by `timeout`): keep what was measured
        click.echo(f"{script}: interrupted; writing the {len(recorder.seen)} signatures seen so far", err=True)
    except Exception:  # the script's own error: show it, keep what was measured
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.argv, sys.path[0] = argv, path0
        signal.signal(signal.SIGTERM, old_term)
        restore()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if code:
        click.echo(f"{script} {' '.join(script_args)}: exited with status {code}", err=True)
    return code


def _fake_distributed(world_size: int):
    """Make ``dist.init_process_group`` (any backend) start a fake group: rank 0 of ``world_size``.

    Uses PyTorch's FakeProcessGroup (``torch.testing._internal.distributed.fake_pg``,
    registered as backend "fake"): collectives complete at once and move no data. Groups made
    later (``new_group``, any backend, gloo included) are fake groups as well.
    Returns a function that undoes the patch and destroys the group.
    """
    import inspect
    import os

    import torch.distributed as dist

    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512"}  # fmt: skip
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    original = dist.init_process_group

    def init_fake(*args, **kwargs):
        from torch.testing._internal.distributed.fake_pg import FakeStore

        if dist.is_initialized():
            dist.destroy_process_group()
        original("fake", store=FakeStore(), rank=0, world_size=world_size)

    dist.init_process_group = init_fake
    # Every later group is fake too, whatever backend the script asks for: a real one would build
    # on the FakeStore (gloo cannot, it fails in C++ "Not implemented") and wait for ranks that
    # never come. All group creation (new_group, new_subgroups, DeviceMesh) goes through this helper.
    from torch.distributed import distributed_c10d as c10d

    new_pg = c10d._new_process_group_helper
    new_pg_params = inspect.signature(new_pg)

    def new_pg_fake(*args, **kwargs):
        call = new_pg_params.bind(*args, **kwargs)
        if "backend" in new_pg_params.parameters:
            import torch.testing._internal.distributed.fake_pg  # noqa: F401  (registers "fake")

            call.arguments["backend"] = dist.Backend(dist.Backend.FAKE)
            if call.arguments.get("backend_options") is not None:  # another backend's (NCCL's) options
                call.arguments["backend_options"] = None
        return new_pg(*call.args, **call.kwargs)

    c10d._new_process_group_helper = new_pg_fake
    # DDP's default all-reduce hook fails on the fake group (its future carries no tensor):
    # give DDP a hook that returns the bucket as it is (the gradient copies into buckets still run).
    from torch.nn.parallel import DistributedDataParallel as DDP

    ddp_init = DDP.__init__

    def ddp_init_fake(self, *args, **kwargs):
        ddp_init(self, *args, **kwargs)
        self.register_comm_hook(None, _bucket_as_is)

    DDP.__init__ = ddp_init_fake  # type: ignore[method-assign]

    def restore() -> None:
        dist.init_process_group = original
        c10d._new_process_group_helper = new_pg
        DDP.__init__ = ddp_init  # type: ignore[method-assign]
        if dist.is_initialized():
            dist.destroy_process_group()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return restore


def _bucket_as_is(state, bucket):
    import torch

    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise click.ClickException(f"{path}: cannot read ({e.strerror})") from None


def _read_runs(path: Path) -> list[tuple[int, str, list[str]]]:
    import shlex

    runs = []
    for i, line in enumerate(_lines(path), start=1):
        parts = shlex.split(line, comments=True)
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].isdigit():
            raise click.ClickException(f"{path}:{i}: expected 'WORLD_SIZE SCRIPT ARGS...'")
        runs.append((int(parts[0]), parts[1], parts[2:]))
    return runs


def _read_specs(path: Path) -> list[dict]:
    from phantora.jsonl import records

    specs = []
    for i, d in records(path, _lines(path), click.ClickException):
        if not isinstance(d, dict) or "op" not in d or "key" not in d:
            raise click.ClickException(f"{path}:{i}: field 'op' or 'key' is missing")
        specs.append(d)
    return specs


def _print(rows: list[dict], as_json: bool, gpu: str) -> None:
    if as_json:
        for r in rows:
            click.echo(json.dumps({"gpu": gpu, **r}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"phantora profile ({gpu})")
    for c in ("target", "recorded", "failed", "entries_in_file"):
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(r[c]) for c in ("target", "recorded", "failed", "entries_in_file")))
    Console().print(t)
