"""Point kinds: how one point runs (a ``phantora`` subcommand) and how its output becomes table rows.

``run`` points read the run's ``summary.json`` (the figures a run computes once); ``netbench``
points, which write no files, read their ``--json`` lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from common.registry import Registry
from phantora.sweep.schema import SweepError

if TYPE_CHECKING:
    from phantora.sweep.study import Study


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


SUMMARY_FIELDS = ("network_model", "nnodes", "nproc_per_node", "peak_allocated_bytes", "peak_reserved_bytes", "oom")
"""Scalars of a run's ``summary.json`` copied into its sweep row beside the printed summary row."""


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
        return ["run", "--scenario", str(scenario_path), "--out", str(out_dir), *s.args,
                str(study.script_path()), *s.script_args]

    def rows(self, stdout: str, out_dir: Path) -> list[dict[str, Any]]:
        """The run's summary row (as ``phantora run --json`` prints it), the :data:`SUMMARY_FIELDS`,
        and the steady-state figures: ``iteration_ms`` (mean excluding the first iteration) and the
        breakdown's ``compute_ms`` / ``exposed_comm_ms`` / ``idle_ms``, all from ``summary.json``."""
        from phantora.summary import summary_rows

        path = out_dir / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            raise SweepError(f"{path}: missing or unreadable (the run wrote no summary)") from None
        if summary.get("status") != "complete":
            error = str(summary.get("error") or "").strip().splitlines()
            raise SweepError(f"{path}: status {summary.get('status')!r}" + (f": {error[-1]}" if error else ""))
        row = _scalars({k: v for k, v in summary_rows(summary)[-1].items() if k != "row"})
        row.update(_scalars({k: summary[k] for k in SUMMARY_FIELDS if k in summary}))
        row["iteration_ms"] = summary["mean_ms_per_iter_excluding_first"]
        row.update(_scalars(summary.get("breakdown_ms_excluding_first") or {}))
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
        rows: list[dict[str, Any]] = []
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
