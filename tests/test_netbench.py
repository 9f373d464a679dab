"""``phantora netbench``: table/JSON rows, nccl-tests conventions, clear errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from phantora.commands.netbench import netbench

SCEN = "scenarios/leafspine-16x8-h100.yaml"


def test_json_rows_have_busbw_convention_and_ratio():
    r = CliRunner().invoke(netbench, ["--scenario", SCEN, "--op", "all_gather", "--ranks", "16",
                                      "--min-bytes", "1M", "--max-bytes", "4M", "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["size_bytes"] for row in rows] == [1 << 20, 4 << 20]
    for row in rows:
        assert row["ideal_busbw_gbps"] == round(row["ideal_algbw_gbps"] * 15 / 16, 3) or abs(
            row["ideal_busbw_gbps"] - row["ideal_algbw_gbps"] * 15 / 16) < 2e-3
        assert row["multipath_over_single"] > 0


def test_table_output():
    r = CliRunner().invoke(netbench, ["--scenario", SCEN, "--ranks", "8", "--min-bytes", "1K", "--max-bytes", "1K"])
    assert r.exit_code == 0 and "busbw" in r.output and "1K" in r.output


def test_bad_inputs_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: 2\nnetwork: {nic: {gbitt: 3}}\n")
    r = CliRunner().invoke(netbench, ["--scenario", str(bad)])
    assert r.exit_code == 2 and "network.nic.gbitt: unknown field" in r.output
    r = CliRunner().invoke(netbench, ["--scenario", SCEN, "--op", "allreduce"])
    assert r.exit_code == 2 and "valid:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(netbench, ["--scenario", SCEN, "--ranks", "999"])
    assert r.exit_code == 2 and "--ranks" in r.output
