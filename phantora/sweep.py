"""What-if studies: expand a sweep file into scenario points, run them, gather one table.

A study file (see ``scenarios/studies/``) names a base scenario, fixed overrides, and a
``sweep:`` block (a ``grid`` = cartesian product, or a ``list`` of override sets) over dotted
scenario fields. Every point's scenario is composed and validated *before* anything runs,
so a typo fails in one line instead of an hour into the sweep.

Each point runs as its own ``python -m phantora <command>`` subprocess writing into
``<out>/points/<id>/``; a point is finished once its ``result.json`` exists (written
atomically: tmp + rename), so rerunning the same command resumes and skips finished points.
The point id is a stable hash of its overrides, so reordering a grid reuses results.

Lifecycle: each point runs in its own session (process group) with a parent-death signal tied
to the sweep, so a point past ``timeout_s``, a sweep interrupted by SIGINT/SIGTERM and a sweep
killed outright all end the point's whole process tree; one sweep at a time may write into an
output folder (``.phantora-sweep.lock``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.errors import one_line
from common.registry import Registry
from phantora.compose import (
    EXTENDS_KEY,
    ComposeError,
    apply_overrides,
    check_no_conflicts,
    read_yaml_mapping,
    resolve_scenario_dict,
    short_name,
)

RESULT_FILE = "result.json"
TABLE_FILE = "sweep.parquet"
LOCK_FILE = ".phantora-sweep.lock"
STOP_GRACE_S = 10.0
"""A point told to stop (timeout, interrupted sweep) gets this long after SIGTERM before SIGKILL."""


class SweepError(Exception):
    """A study that cannot run; ``str()`` is the one line to show the user."""


# ----------------------------------------------------------------------------- study file schema


class StudySection(BaseModel):
    """What each point runs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    command: str = "run"
    """A name in :data:`POINT_KINDS`: ``run`` (a full simulated training run) or ``netbench``."""
    script: str | None = None
    """Training script for ``run`` (relative to the study file, else to the current directory)."""
    script_args: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    """Extra options for the phantora subcommand (e.g. netbench's ``--op all_reduce``)."""
    timeout_s: float = Field(3600.0, gt=0)
    """Wall-clock limit of one point; a point past it is recorded as failed."""


class SweepSection(BaseModel):
    """Either a cartesian ``grid`` of values per dotted field, or an explicit ``list`` of points."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Any]] | None = None
    list_: list[dict[str, Any]] | None = Field(None, alias="list")

    @model_validator(mode="after")
    def _one_kind(self) -> SweepSection:
        if (self.grid is None) == (self.list_ is None):
            raise ValueError("give exactly one of 'grid' or 'list'")
        return self


class StudyFile(BaseModel):
    """The top level of a study file."""

    model_config = ConfigDict(extra="forbid")

    study: StudySection
    base: str | None = None
    """Base scenario path (relative to the study file); ``extends:`` is accepted as a synonym."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Dotted-path overrides applied to every point."""
    sweep: SweepSection

    @field_validator("base")
    @classmethod
    def _nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("empty path")
        return v


# ----------------------------------------------------------------------------- points


@dataclass(frozen=True)
class Point:
    """One scenario of a study: its overrides (dotted field → value) and the composed scenario."""

    overrides: dict[str, Any]
    scenario: dict[str, Any] = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        return point_id(self.overrides)

    def label(self) -> str:
        return ", ".join(f"{short_name(k)}={v}" for k, v in self.overrides.items())


def point_id(overrides: dict[str, Any]) -> str:
    """Stable 12-hex-digit id of a set of overrides (independent of their order)."""
    blob = json.dumps(overrides, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Study:
    """A loaded, validated study: every point's scenario is already checked."""

    path: Path
    spec: StudyFile
    points: list[Point]
    swept: list[str]
    """The dotted fields that vary across points, in file order (the table's key columns)."""

    @property
    def kind(self) -> PointKind:
        return POINT_KINDS.get(self.spec.study.command)

    def script_path(self) -> str | None:
        s = self.spec.study.script
        if s is None:
            return None
        near = self.path.parent / s
        return str(near.resolve()) if near.exists() else str(Path(s).resolve())


def _expand(sweep: SweepSection, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    if sweep.grid is not None:
        if not sweep.grid:
            raise SweepError(f"{source}: sweep.grid: empty grid (no fields to sweep)")
        for name, values in sweep.grid.items():
            if not values:
                raise SweepError(f"{source}: sweep.grid.{name}: empty list of values")
        check_no_conflicts(sweep.grid, source, "sweep.grid")
        names = list(sweep.grid)
        combos = itertools.product(*(sweep.grid[n] for n in names))
        return [dict(zip(names, c, strict=True)) for c in combos], names
    assert sweep.list_ is not None
    if not sweep.list_:
        raise SweepError(f"{source}: sweep.list: empty list of points")
    names: list[str] = []
    for i, entry in enumerate(sweep.list_):
        if not entry:
            raise SweepError(f"{source}: sweep.list[{i}]: empty point")
        check_no_conflicts(entry, source, f"sweep.list[{i}]")
        names.extend(n for n in entry if n not in names)
    return [dict(e) for e in sweep.list_], names


def validate_scenario(data: dict[str, Any], source: str, *, network: bool | None = None) -> None:
    """Validate a composed scenario the way ``phantora run`` will (raises :class:`SweepError`):
    the schema and every registry name, and, when ``network`` (default: more than one GPU), that
    netsim can build its network."""
    from phantora.scenario import ScenarioError, scenario_from_dict

    try:
        scenario = scenario_from_dict(data, source)
        if network or (network is None and scenario.world_size > 1):
            scenario.check_network()
    except ScenarioError as e:
        raise SweepError(str(e)) from None
    net = data.get("network")
    if net is not None:
        validate_network(net, source)


def validate_network(net: Any, source: str) -> None:
    """Check the ``network`` section against netsim's schema when netsim provides one."""
    try:
        from netsim.config import NetworkConfig  # type: ignore[import-not-found]
    except ImportError:
        return
    validate = getattr(NetworkConfig, "model_validate", None)
    if validate is None:
        return
    try:
        validate(net)
    except ValidationError as e:
        msg = one_line(source, e)
        head, _, rest = msg.partition(": ")
        raise SweepError(f"{head}: network.{rest}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise SweepError(f"{source}: network: {e}") from None


def load_study(path: str | Path) -> Study:
    """Parse, compose and validate every point of a study file (raises :class:`SweepError`)."""
    p = Path(path)
    source = str(path)
    try:
        raw = read_yaml_mapping(p, source)
    except ComposeError as e:
        raise SweepError(str(e)) from None
    if EXTENDS_KEY in raw:
        if "base" in raw:
            raise SweepError(f"{source}: extends: give either 'base' or 'extends', not both")
        raw["base"] = raw.pop(EXTENDS_KEY)
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as e:
        raise SweepError(one_line(source, e)) from None
    if spec.study.command not in POINT_KINDS:
        raise SweepError(f"{source}: study.command: unknown command {spec.study.command!r}; "
                         f"valid: {', '.join(POINT_KINDS.names())}")
    if spec.base is None:
        base: dict[str, Any] = {}
    else:
        base_path = p.parent / spec.base
        if not base_path.is_file():
            raise SweepError(f"{source}: base: no such file {spec.base!r} (looked in {p.parent})")
        try:
            base = resolve_scenario_dict(base_path)
        except ComposeError as e:
            raise SweepError(str(e)) from None
    try:
        combos, swept = _expand(spec.sweep, source)
        fixed = apply_overrides(base, spec.set, source=source, where="set")
    except ComposeError as e:
        raise SweepError(str(e)) from None
    for name in swept:
        if name in spec.set or any(name.startswith(s + ".") or s.startswith(name + ".") for s in spec.set):
            raise SweepError(f"{source}: sweep.{name}: also given in 'set' (conflicting overrides)")
    where = "sweep.grid" if spec.sweep.grid is not None else "sweep.list"
    points = []
    for combo in combos:
        try:
            scen = apply_overrides(fixed, combo, source=source, where=where)
        except ComposeError as e:
            raise SweepError(str(e)) from None
        scen.setdefault("name", spec.study.name)
        scen["name"] = f"{scen['name']}[{', '.join(f'{k}={v}' for k, v in combo.items())}]"
        _validate_point(scen, combo, source, where, network=True if spec.study.command == "netbench" else None)
        pt = Point(combo, scen)
        if any(q.id == pt.id for q in points):
            raise SweepError(f"{source}: {where}: the point {combo} appears twice")
        points.append(pt)
    study = Study(p, spec, points, swept)
    study.kind.check(study)
    return study


def _validate_point(scen: dict[str, Any], combo: dict[str, Any], source: str, where: str,
                    network: bool | None = None) -> None:
    """Validate one point; an error about a swept field is reported as ``sweep.grid.<field>``."""
    marker = "\x00point"
    try:
        validate_scenario(scen, marker, network=network)
    except SweepError as e:
        rest = str(e).removeprefix(marker + ": ")
        loc, _, what = rest.partition(": ")
        for name in combo:
            if loc == name or loc.startswith(name + ".") or name.startswith(loc + "."):
                raise SweepError(f"{source}: {where}.{name}: {what}") from None
        raise SweepError(f"{source}: {rest} (point {point_id(combo)}: {combo})") from None


# ----------------------------------------------------------------------------- point kinds


class PointKind:
    """How one point runs (a ``phantora`` subcommand) and how its output becomes table rows.

    Subclasses override :meth:`argv` and :meth:`rows`; :meth:`check` may refuse a study.
    """

    def check(self, study: Study) -> None:
        """Refuse a study this kind cannot run (raise :class:`SweepError`)."""

    def argv(self, study: Study, scenario_path: Path, out_dir: Path) -> list[str]:
        """Arguments of the ``phantora`` subcommand that runs the point."""
        raise NotImplementedError

    def command(self, study: Study, scenario_path: Path, out_dir: Path) -> list[str]:
        """The point's full command line: ``python -m phantora`` plus :meth:`argv`."""
        return [sys.executable, "-m", "phantora", *self.argv(study, scenario_path, out_dir)]

    def rows(self, stdout: str, out_dir: Path) -> list[dict[str, Any]]:
        raise NotImplementedError


POINT_KINDS: Registry[PointKind] = Registry("sweep command")


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON-object lines of a command's ``--json`` output (other lines ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


SUMMARY_FIELDS = ("network_model", "nnodes", "nproc_per_node", "symmetric", "executed_ranks", "gpu_busy_pct", "peak_allocated_bytes",
                  "peak_reserved_bytes", "iterations", "oom")
"""Scalars copied from a run's ``summary.json`` into its sweep row."""


class RunKind(PointKind):
    """A full simulated ``phantora run`` of the study's script; one row per point."""

    def check(self, study: Study) -> None:
        if study.spec.study.script is None:
            raise SweepError(f"{study.path}: study.script: required for command 'run'")
        script = study.script_path()
        if script is None or not Path(script).is_file():
            raise SweepError(f"{study.path}: study.script: no such file {study.spec.study.script!r}")

    def argv(self, study: Study, scenario_path: Path, out_dir: Path) -> list[str]:
        s = study.spec.study
        return ["run", "--scenario", str(scenario_path), "--out", str(out_dir), "--json", *s.args,
                str(study.script_path()), *s.script_args]

    def rows(self, stdout: str, out_dir: Path) -> list[dict[str, Any]]:
        lines = json_lines(stdout)
        iters = [r for r in lines if "iteration" in r]
        row: dict[str, Any] = {}
        for r in lines:
            if "iteration" not in r:
                row.update(_scalars(r))
        if iters:
            steady = iters[1:] or iters
            for key in ("sim_ms", "compute_ms", "exposed_comm_ms", "idle_ms"):
                vals = [float(r[key]) for r in steady if isinstance(r.get(key), (int, float))]
                if vals:
                    name = "iteration_ms" if key == "sim_ms" else key
                    row[name] = sum(vals) / len(vals)
            row["iterations"] = len(iters)
        summary = out_dir / "summary.json"  # run facts the JSON lines leave out (network model, memory)
        if summary.is_file():
            try:
                facts = json.loads(summary.read_text())
            except json.JSONDecodeError:
                facts = {}
            for key in SUMMARY_FIELDS:
                if key not in row and isinstance(facts.get(key), (int, float, str, bool)):
                    row[key] = facts[key]
        if "iteration_ms" not in row and isinstance(row.get("mean_ms_per_iter_excluding_first"), (int, float)):
            row["iteration_ms"] = row["mean_ms_per_iter_excluding_first"]
        if not row:
            raise SweepError("no JSON result lines in the output of 'phantora run --json'")
        return [row]


class NetbenchKind(PointKind):
    """A ``phantora netbench`` (network only, no script); one row per message size and transport.

    Unless the study's ``args`` name ``--transports``, only the point's own transport
    (``network.transport.name``) is measured, so sweeping the transport works like any field.
    """

    def argv(self, study: Study, scenario_path: Path, out_dir: Path) -> list[str]:
        args = list(study.spec.study.args)
        if not any(a == "--transports" or a.startswith("--transports=") for a in args):
            scen = yaml.safe_load(scenario_path.read_text()) or {}
            name = ((scen.get("network") or {}).get("transport") or {}).get("name", "single_path")
            args += ["--transports", str(name)]
        return ["netbench", "--scenario", str(scenario_path), "--json", *args]

    def rows(self, stdout: str, out_dir: Path) -> list[dict[str, Any]]:
        rows = []
        for wide in json_lines(stdout):
            # netbench prints one row per size with <transport>_<metric> columns: make it tidy
            per: dict[str, dict[str, Any]] = {}
            common: dict[str, Any] = {}
            for k, v in _scalars(wide).items():
                for metric in ("time_us", "algbw_gbps", "busbw_gbps"):
                    if k.endswith("_" + metric):
                        per.setdefault(k[: -len(metric) - 1], {})[metric] = v
                        break
                else:
                    common[k] = v
            if per:
                rows.extend({**common, "transport": t, **m} for t, m in per.items())
            else:
                rows.append(common)
        if not rows:
            raise SweepError("no JSON result lines in the output of 'phantora netbench --json'")
        return rows


POINT_KINDS.add("run", RunKind())
POINT_KINDS.add("netbench", NetbenchKind())


# ----------------------------------------------------------------------------- running


@dataclass
class PointOutcome:
    point_id: str
    ok: bool
    rows: list[dict[str, Any]]
    error: str | None
    wall_s: float
    reused: bool = False


def point_dir(out: Path, pid: str) -> Path:
    return out / "points" / pid


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def materialise(study: Study, out: Path) -> None:
    """Write every point's scenario to ``<out>/points/<id>/scenario.yaml`` (and the study's index)."""
    for pt in study.points:
        d = point_dir(out, pt.id)
        d.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(pt.scenario, sort_keys=False)
        f = d / "scenario.yaml"
        if not f.is_file() or f.read_text() != text:
            write_atomic(f, text)
    index = [{"point_id": pt.id, "overrides": pt.overrides} for pt in study.points]
    write_atomic(out / "points.json", json.dumps({"study": study.spec.study.name, "swept": study.swept,
                                                  "command": study.spec.study.command,
                                                  "points": index}, indent=2, default=str))


def load_result(out: Path, pid: str) -> dict[str, Any] | None:
    """A finished point's result (``None`` if the point has not completed)."""
    f = point_dir(out, pid) / RESULT_FILE
    try:
        data = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("complete") else None


def fingerprint(argv: list[str], pdir: Path) -> str:
    """What a point's result depends on that the sweep can see: its command line and scenario.

    A finished point is reused only while this matches, so editing the study's arguments or
    the base scenario reruns the affected points instead of mixing old and new results.
    (Edits to the training script's own code are not tracked: use a new ``--out``.)
    """
    scenario = pdir / "scenario.yaml"
    text = scenario.read_text() if scenario.is_file() else ""
    return hashlib.sha256(json.dumps([argv, text]).encode()).hexdigest()[:16]


def point_command(study: Study, out: Path, pt: Point) -> list[str]:
    d = point_dir(out, pt.id)
    return study.kind.command(study, d / "scenario.yaml", d / "out")


_running: dict[int, subprocess.Popen] = {}
"""Points running now (pid → process), so an interrupted sweep can stop them all."""
_running_lock = threading.Lock()


def _stop_point(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the point's whole process group, SIGKILL it after ``grace_s``, then reap the point."""
    from phantora.lifecycle import child_state, kill_group

    if child_state(proc.pid)[0] == "running":
        kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while child_state(proc.pid)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    if child_state(proc.pid)[0] != "reaped":  # running or a zombie: its pid is still ours
        kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def stop_running_points(grace_s: float = STOP_GRACE_S) -> None:
    """Stop every point this process is running (an interrupted sweep)."""
    with _running_lock:
        procs = list(_running.values())
    threads = [threading.Thread(target=_stop_point, args=(p, grace_s), daemon=True) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(grace_s + 10.0)


def run_point(argv: list[str], kind_name: str, pdir: str, pid: str, timeout_s: float) -> PointOutcome:
    """Run one point's subprocess and record its result (module-level so Ray can ship it).

    The point runs in its own session, with SIGTERM as its parent-death signal (so it ends if this
    process dies, however); past ``timeout_s`` its whole process group is stopped.
    """
    from phantora.lifecycle import track, untrack

    d = Path(pdir)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "phantora.lifecycle", "--parent", str(os.getpid()), "--", *argv]
    with open(d / "stdout.txt", "w") as so, open(d / "stderr.txt", "w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, start_new_session=True)
        with _running_lock:
            _running[proc.pid] = proc
        track(proc.pid)  # a SIGTERM/SIGINT to the sweep (phantora.lifecycle.handle_signals) stops it too
        try:
            try:
                rc: int | None = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                rc = None
                _stop_point(proc)
        except BaseException:
            _stop_point(proc)
            raise
        finally:
            untrack(proc.pid)
            with _running_lock:
                _running.pop(proc.pid, None)
    wall = time.perf_counter() - t0
    stdout = (d / "stdout.txt").read_text()
    if rc != 0:
        err_lines = [ln for ln in (d / "stderr.txt").read_text().splitlines() if ln.strip()]
        why = f"timed out after {timeout_s:g} s" if rc is None else f"exit code {rc}"
        error = f"{why}: {err_lines[-1] if err_lines else '(no error output)'}"
        write_atomic(d / "error.txt", error + "\n")
        return PointOutcome(pid, False, [], error, wall)
    try:
        rows = POINT_KINDS.get(kind_name).rows(stdout, d / "out")
    except SweepError as e:
        write_atomic(d / "error.txt", f"{e}\n")
        return PointOutcome(pid, False, [], str(e), wall)
    (d / "error.txt").unlink(missing_ok=True)
    write_atomic(d / RESULT_FILE, json.dumps({"complete": True, "point_id": pid, "wall_s": wall,
                                              "fingerprint": fingerprint(argv, d), "rows": rows},
                                             indent=1, default=str))
    return PointOutcome(pid, True, rows, None, wall)


Executor = Callable[[list[tuple[list[str], str, str, str, float]], int], Iterator[PointOutcome]]


def local_executor(jobs: list[tuple[list[str], str, str, str, float]], workers: int) -> Iterator[PointOutcome]:
    """Run points as subprocesses, ``workers`` at a time; yields outcomes as they finish."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from phantora.lifecycle import raise_if_interrupted

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = [pool.submit(run_point, *job) for job in jobs]
        try:
            pending = set(futs)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                raise_if_interrupted()  # a signal whose exception Python swallowed
                for fut in futs:  # in submission order among those done
                    if fut in done:
                        yield fut.result()
        except BaseException:
            for f in futs:
                f.cancel()
            stop_running_points()  # the pool's threads end once their points are gone
            raise


def ray_executor(address: str | None) -> Executor:
    """An executor that runs each point as a Ray task (``pip install ray``; workers need phantora).

    Trust: ``address`` is trusted completely. Each task runs the point's command line on whatever
    worker the cluster picks, and the outcome comes back through Ray's object store, which
    *unpickles* it here: anyone who controls that cluster can run code in this process and on the
    workers. Use only a cluster you (or people you trust) run; see docs/reliability.md.
    """
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise SweepError("--ray needs Ray: pip install 'ray[default]' (or run without --ray)") from None

    def run(jobs: list[tuple[list[str], str, str, str, float]], workers: int) -> Iterator[PointOutcome]:
        if not ray.is_initialized():
            ray.init(address=address)
        remote = ray.remote(run_point)
        pending = [remote.remote(*job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])

    return run


def run_study(
    study: Study,
    out: Path,
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    on_progress: Callable[[PointOutcome, int, int], None] | None = None,
) -> list[PointOutcome]:
    """Run every unfinished point of ``study`` into ``out``; write and return the outcomes.

    Finished points (a complete ``result.json`` with the same :func:`fingerprint`) are reused, not rerun. The table is written
    after every point, so an interrupted sweep still leaves a consistent partial table.
    """
    out.mkdir(parents=True, exist_ok=True)
    with _sweep_lock(out):
        return _run_study_locked(study, out, workers=workers, executor=executor, on_progress=on_progress)


@contextlib.contextmanager
def _sweep_lock(out: Path) -> Iterator[None]:
    """One sweep at a time writes into ``out`` (an exclusive ``fcntl`` lock for the sweep's duration)."""
    from phantora.lifecycle import LockHeld, forget, pid_lock

    try:
        f = pid_lock(out / LOCK_FILE)
    except LockHeld as e:
        raise SweepError(f"{out}: another phantora sweep (pid {e}) is running there; wait for it "
                         "or use another --out") from None
    except OSError as e:
        raise SweepError(f"{out}: not writable ({e.strerror or e})") from None
    try:
        yield
    finally:
        forget(f)
        f.close()


def _run_study_locked(study: Study, out: Path, *, workers: int | None, executor: Executor | None,
                      on_progress: Callable[[PointOutcome, int, int], None] | None) -> list[PointOutcome]:
    materialise(study, out)
    outcomes: dict[str, PointOutcome] = {}
    todo = []
    for pt in study.points:
        prev = load_result(out, pt.id)
        argv = point_command(study, out, pt)
        if prev is not None and prev.get("fingerprint") == fingerprint(argv, point_dir(out, pt.id)):
            outcomes[pt.id] = PointOutcome(pt.id, True, prev.get("rows", []), None,
                                           float(prev.get("wall_s", 0.0)), reused=True)
        else:
            todo.append((argv, study.spec.study.command,
                         str(point_dir(out, pt.id)), pt.id, study.spec.study.timeout_s))
    total = len(study.points)
    if on_progress is not None:
        for o in outcomes.values():
            on_progress(o, len(outcomes), total)
    run = executor or local_executor
    if todo:
        for o in run(todo, workers or os.cpu_count() or 1):
            outcomes[o.point_id] = o
            write_table(study, out, outcomes)
            if on_progress is not None:
                on_progress(o, len(outcomes), total)
    write_table(study, out, outcomes)
    return [outcomes[pt.id] for pt in study.points if pt.id in outcomes]


def table_rows(study: Study, outcomes: dict[str, PointOutcome]) -> list[dict[str, Any]]:
    """Tidy rows: point id, swept fields, status, then the metrics (one row per result row)."""
    rows = []
    for pt in study.points:
        o = outcomes.get(pt.id)
        if o is None:
            continue
        key: dict[str, Any] = {"point_id": pt.id}
        for name in study.swept:
            key[name] = pt.overrides.get(name)
        key["status"] = "ok" if o.ok else "failed"
        key["error"] = o.error
        key["point_wall_s"] = round(o.wall_s, 3)
        for r in o.rows or [{}]:
            rows.append({**key, **{k: v for k, v in r.items() if k not in key}})
    return rows


def write_table(study: Study, out: Path, outcomes: dict[str, PointOutcome]) -> Path:
    import pandas as pd

    df = pd.DataFrame(table_rows(study, outcomes))
    for name in study.swept:  # mixed-type columns (e.g. 1 and "2:1") would not fit parquet
        if name in df and df[name].map(type).nunique() > 1:
            df[name] = df[name].astype(str)
    path = out / TABLE_FILE
    tmp = out / f".{TABLE_FILE}.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
