"""Issue 15, one validation of every name and bound at load: ``<file>: <field.path>: <message>`` on
one line, exit code 2, for ``run`` (one GPU or many), ``netbench`` and every ``sweep --dry-run``
point; a network netsim cannot build is an error, never a silent swap to another model."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from phantora.cli import main
from phantora.scenario import ScenarioError, load_scenario

BAD_NAMES = [
    ("network:\n  transport: {name: uccl}\n", "network.transport.name: unknown transport 'uccl'; valid: ethereal, "
     "ideal, single_path, uccl_multipath"),
    ("network:\n  transport: {name: uccl_multipath, options: {pathz: 4}}\n", "network.transport.options: transport "
     "'uccl_multipath': "),
    ("network:\n  fabric: {kind: torus}\n", "network.fabric.kind: unknown topology 'torus'; valid: fat_tree, "
     "leaf_spine"),
    ("network:\n  collectives: {algorithm: rign}\n", "network.collectives.algorithm: unknown all-reduce algorithm "
     "'rign'; valid: ring, tree, auto"),
    ("network:\n  collectives: {protocol: ll}\n", "network.collectives.protocol: unknown NCCL protocol 'll'"),
    ("network:\n  backend: ns4\n", "network.backend: unknown network backend 'ns4'; valid: alpha_beta, flow, ns3"),
    ("compute: {model: roofine}\n", "compute.model: unknown compute model 'roofine'"),
    ("memory_limit_gib: 1e12\n", "memory_limit_gib: 1e+12 GiB is more than the h100's 79.18 GiB"),
    ("memory_limit_gib: .inf\n", "memory_limit_gib: inf GiB is more than the h100's 79.18 GiB"),
    ("memory_limit_gib: 0\n", "memory_limit_gib: Input should be greater than 0"),
]


def scenario_file(tmp_path, extra: str, gpus: int = 1):
    p = tmp_path / "bad.yaml"
    compute = "" if "compute:" in extra else "compute: {model: roofline}\n"
    p.write_text(f"name: bad\ngpu: h100\nhosts: 1\ngpus_per_host: {gpus}\n{compute}{extra}")
    return p


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, prog_name="phantora")


def one_line(r) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.mark.parametrize("gpus", [1, 2])
@pytest.mark.parametrize(("extra", "expected"), BAD_NAMES)
def test_run_rejects_bad_names_and_bounds_in_one_line(tmp_path, extra, expected, gpus):
    """Also with one GPU, where the network is never used (a bad name there used to pass silently)."""
    p = scenario_file(tmp_path, extra, gpus)
    script = tmp_path / "never.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    r = invoke(["run", "--scenario", str(p), "--out", str(tmp_path / "o"), str(script)])
    assert r.exit_code == 2
    assert one_line(r).startswith(f"phantora: {p}: {expected}")
    assert not (tmp_path / "ran").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("extra", "expected"), [x for x in BAD_NAMES if x[0].startswith("network")])
def test_netbench_rejects_bad_names_in_one_line(tmp_path, extra, expected):
    p = scenario_file(tmp_path, extra, gpus=2)
    r = invoke(["netbench", "--scenario", str(p), "--max-bytes", "1K"])
    assert r.exit_code == 2
    assert one_line(r).startswith(f"error: {p}: {expected}")


def test_sweep_dry_run_validates_every_point(tmp_path):
    (tmp_path / "base.yaml").write_text("name: b\ngpu: h100\nhosts: 2\ngpus_per_host: 2\n")
    study = tmp_path / "study.yaml"
    study.write_text("study: {name: s, command: netbench}\nbase: base.yaml\n"
                     "sweep:\n  grid:\n    network.transport.name: [single_path, uccl]\n")
    r = invoke(["sweep", str(study), "--dry-run", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    assert one_line(r) == (f"Error: {study}: sweep.grid.network.transport.name: unknown transport 'uccl'; "
                           "valid: ethereal, ideal, single_path, uccl_multipath")
    assert not (tmp_path / "o").exists()


def test_sweep_dry_run_checks_that_the_network_builds(tmp_path):
    (tmp_path / "base.yaml").write_text("name: b\ngpu: h100\nhosts: 2\ngpus_per_host: 1\n")
    study = tmp_path / "study.yaml"
    study.write_text("study: {name: s, command: netbench}\nbase: base.yaml\nset: {network.backend: ns3}\n"
                     "sweep:\n  grid:\n    gpus_per_host: [1, 8]\n")
    r = invoke(["sweep", str(study), "--dry-run", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    line = one_line(r)
    assert line.startswith(f"Error: {study}: network.backend: ns3 models one GPU and one NIC per host")
    assert line.endswith("{'gpus_per_host': 8})")  # the point it fails for


def test_network_build_error_is_an_error_not_a_fallback(tmp_path):
    """``network.backend: ns3`` with 8 GPUs per host used to fall back silently to the alpha-beta model."""
    from phantora.run import RunJob
    from phantora.scenario import network_backend

    p = scenario_file(tmp_path, "network: {backend: ns3}\n", gpus=8)
    s = load_scenario(p)
    for build in (lambda: network_backend(s, 1, 8), lambda: RunJob.from_scenario(s, script="x.py", argv=[])):
        with pytest.raises(ScenarioError, match=rf"^{p}: network.backend: ns3 models one GPU and one NIC per host"):
            build()
    script = tmp_path / "never.py"
    script.write_text("raise SystemExit(9)\n")
    r = invoke(["run", "--scenario", str(p), str(script)])
    assert r.exit_code == 2 and one_line(r).startswith(f"phantora: {p}: network.backend: ns3")


def test_unsupported_collective_kind_raises_instead_of_becoming_all_reduce():
    """Kinds are ``common.kinds.CollectiveKind``: an unknown one is refused where the call is made (a kind
    the scenario's backend cannot time: ``tests/test_coordinator_netsim.py``)."""
    from common.kinds import UnknownCollectiveKind
    from common.protocol import CollectiveCall

    with pytest.raises(UnknownCollectiveKind, match=r"unknown collective kind 'all_reduce_coalesced_v9'; valid: "):
        CollectiveCall(key="g#0", kind="all_reduce_coalesced_v9", group="g", ranks=(0, 1), nbytes=1024,
                       dtype="float32", call_site="train.py:3")


def test_compute_options_error_names_the_file(tmp_path):
    p = scenario_file(tmp_path, "compute: {model: roofline, options: {x: 1}}\n")
    with pytest.raises(ScenarioError, match=rf"^{p}: compute.options: "):
        load_scenario(p).build_compute_model()


@pytest.mark.parametrize(("args", "expected"), [
    (["--max-bytes", "infG"], "error: --max-bytes: not a size: 'infG'"),
    (["--min-bytes", "nanK"], "error: --min-bytes: not a size: 'nanK'"),
    (["--max-bytes", "1e400"], "error: --max-bytes: not a size: '1e400'"),
    (["--max-bytes", "-4K"], "error: --max-bytes: not a whole positive number of bytes: '-4K'"),
    (["--ranks", "0"], "phantora netbench: Invalid value for '--ranks': 0 is not in the range x>=1."),
    (["--ranks", "99"], "error: --ranks 99: must be 1..8 (2 for send_recv)"),
])
def test_netbench_bounds_are_one_line(args, expected):
    r = invoke(["netbench", "--scenario", "scenarios/h200x8.yaml", *args])
    assert r.exit_code == 2
    assert one_line(r) == expected


@pytest.mark.parametrize("args", [
    ["run", "--nnodes", "0", "x.py"],
    ["run", "--timeout", "-1", "x.py"],
    ["run", "--bogus", "x.py"],
    ["netbench"],
    ["sweep"],
    ["nosuchcommand"],
])
def test_usage_errors_are_one_line_exit_2(args):
    r = invoke(args)
    assert r.exit_code == 2
    line = one_line(r)
    assert line.startswith("phantora")


def test_mem_get_info_never_reports_more_free_than_total():
    """A limit above the GPU's memory (possible for a RankConfig built in code) is clamped."""
    import torch

    from interpose import interposed
    from tests.conftest import h100_roofline_cfg

    cfg = h100_roofline_cfg(memory_limit_bytes=10**15)
    with interposed(cfg):
        free, total = torch.cuda.mem_get_info()
    assert total == cfg.gpu.total_memory_bytes and free <= total
