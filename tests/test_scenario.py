"""Scenario files: the shipped ones load, and every error is one line naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantora.scenario import ScenarioError, load_scenario, parse_scenario

GOOD = "name: t\ngpu: h100\nhosts: 1\ngpus_per_host: 1\ncompute:\n  model: roofline\n"


@pytest.mark.parametrize("name,world,gpu", [("h100x1", 1, "h100"), ("h200x1", 1, "h200"),
                                            ("h200x2", 2, "h200"), ("h200x8", 8, "h200"),
                                            ("h100x1-roofline", 1, "h100")])
def test_shipped_scenarios_load(repo_root: Path, name: str, world: int, gpu: str) -> None:
    s = load_scenario(repo_root / "scenarios" / f"{name}.yaml")
    assert s.name == name
    assert s.world_size == world
    assert s.gpu_spec().key == gpu
    assert s.build_compute_model() is not None


def test_default_is_h100x1() -> None:
    s = load_scenario(None)
    assert (s.name, s.gpu, s.world_size) == ("h100x1", "h100", 1)


def test_bare_name_found_in_scenarios_dir() -> None:
    assert load_scenario("h200x8").gpus_per_host == 8


def test_gpu_case_insensitive_and_memory_override() -> None:
    s = parse_scenario(GOOD.replace("h100", "H100") + "memory_limit_gib: 2\n")
    assert s.gpu == "h100"
    assert s.memory_limit_bytes() == 2 * 2**30


def _error(text: str) -> str:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "scenarios/bad.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("scenarios/bad.yaml: ")
    return msg


def test_unknown_gpu_lists_valid() -> None:
    assert _error(GOOD.replace("h100", "h900")) == "scenarios/bad.yaml: gpu: unknown GPU 'h900'; valid: h100, h200"


def test_hosts_below_one() -> None:
    assert _error(GOOD.replace("hosts: 1", "hosts: 0")) == (
        "scenarios/bad.yaml: hosts: Input should be greater than or equal to 1")


def test_gpus_per_host_not_int() -> None:
    assert "gpus_per_host:" in _error(GOOD.replace("gpus_per_host: 1", "gpus_per_host: many"))


def test_unknown_field_forbidden() -> None:
    assert _error(GOOD + "gpu_count: 3\n") == "scenarios/bad.yaml: gpu_count: unknown field"


def test_unknown_compute_model_lists_valid() -> None:
    msg = _error(GOOD.replace("model: roofline", "model: magic"))
    assert msg.startswith("scenarios/bad.yaml: compute.model: unknown compute model 'magic'; valid: ")
    assert "roofline" in msg


def test_missing_name() -> None:
    assert _error("gpu: h100\n") == "scenarios/bad.yaml: name: Field required"


def test_yaml_syntax_error_has_line() -> None:
    msg = _error("name: t\ngpu: [h100\n")
    assert "YAML syntax error at line 3" in msg


def test_top_level_not_mapping() -> None:
    assert "mapping" in _error("- a\n- b\n")


def test_network_section_validated_by_netsim() -> None:
    assert parse_scenario(GOOD).network is not None  # netsim's default network
    assert _error(GOOD + "network:\n  no_such_knob: 400\n") == (
        "scenarios/bad.yaml: network.no_such_knob: unknown field")


def test_missing_file_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as e:
        load_scenario(tmp_path / "nope.yaml")
    assert "nope.yaml: cannot read scenario file" in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_compute_options_one_line() -> None:
    s = parse_scenario(GOOD.replace("model: roofline", "model: roofline\n  options: {no_such_option: 1}"))
    with pytest.raises(ScenarioError) as e:
        s.build_compute_model()
    assert "compute.options" in str(e.value)
