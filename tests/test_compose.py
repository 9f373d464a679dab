"""phantora.compose: `extends:` chains, deep merge, dotted overrides, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantora.compose import (
    ComposeError,
    apply_overrides,
    check_no_conflicts,
    deep_merge,
    get_dotted,
    resolve_scenario_dict,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": 1, "net": {"nic": {"gbps": 400, "n": 8}, "tags": [1, 2]}}
    out = deep_merge(base, {"net": {"nic": {"gbps": 200}, "tags": [3]}, "b": 2})
    assert out == {"a": 1, "b": 2, "net": {"nic": {"gbps": 200, "n": 8}, "tags": [3]}}
    assert base["net"]["nic"]["gbps"] == 400  # inputs untouched


def test_extends_chain_is_relative_to_each_file(tmp_path: Path) -> None:
    write(tmp_path / "clusters" / "base.yaml", "name: base\ngpu: h100\nhosts: 2\nnetwork: {nic: {gbps: 400, n: 8}}\n")
    write(tmp_path / "clusters" / "mid.yaml", "extends: base.yaml\nname: mid\nnetwork: {nic: {gbps: 200}}\n")
    leaf = write(tmp_path / "studies" / "leaf.yaml", "extends: ../clusters/mid.yaml\nhosts: 4\n")
    d = resolve_scenario_dict(leaf)
    assert d == {"name": "mid", "gpu": "h100", "hosts": 4, "network": {"nic": {"gbps": 200, "n": 8}}}


def test_extends_list_later_parents_win(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "gpu: h100\nhosts: 1\n")
    write(tmp_path / "b.yaml", "hosts: 8\n")
    leaf = write(tmp_path / "c.yaml", "extends: [a.yaml, b.yaml]\nname: c\n")
    assert resolve_scenario_dict(leaf) == {"gpu": "h100", "hosts": 8, "name": "c"}


def test_extends_cycle_is_one_line_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ComposeError, match="extends: cycle") as e:
        resolve_scenario_dict(tmp_path / "a.yaml")
    assert "\n" not in str(e.value)


def test_extends_missing_file_names_field(tmp_path: Path) -> None:
    leaf = write(tmp_path / "x.yaml", "extends: nope.yaml\n")
    with pytest.raises(ComposeError, match=r"x.yaml: extends: no such file 'nope.yaml'"):
        resolve_scenario_dict(leaf)


def test_extends_bad_type(tmp_path: Path) -> None:
    leaf = write(tmp_path / "x.yaml", "extends: 3\n")
    with pytest.raises(ComposeError, match="extends: expected a file path"):
        resolve_scenario_dict(leaf)


def test_dotted_overrides_create_sections_and_refuse_conflicts() -> None:
    out = apply_overrides({"hosts": 1}, {"network.fabric.oversubscription": 2, "hosts": 4})
    assert get_dotted(out, "network.fabric.oversubscription") == 2 and out["hosts"] == 4
    with pytest.raises(ComposeError, match=r"set.network.fabric.x: conflicts with override of 'network'"):
        check_no_conflicts(["network", "network.fabric.x"], "s.yaml", "set")
    with pytest.raises(ComposeError, match="'hosts' is a value, not a section"):
        apply_overrides({"hosts": 1}, {"hosts.x": 2}, source="s.yaml")


def test_load_scenario_follows_extends(tmp_path: Path, repo_root: Path) -> None:
    from phantora.scenario import ScenarioError, load_scenario

    base = repo_root / "scenarios" / "h200x8.yaml"
    leaf = write(tmp_path / "more.yaml", f"extends: {base}\nname: two-hosts\nhosts: 2\n")
    sc = load_scenario(leaf)
    assert (sc.name, sc.gpu, sc.hosts, sc.gpus_per_host) == ("two-hosts", "h200", 2, 8)
    bad = write(tmp_path / "bad.yaml", f"extends: {base}\nhostz: 2\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: hostz: unknown field"):
        load_scenario(bad)
