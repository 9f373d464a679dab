"""Profile files: round trip, merging order, GPU filtering, clear errors."""

from __future__ import annotations

import gzip

import pytest

from profiles.store import (
    ProfileEntry,
    ProfileFormatError,
    ProfileHeader,
    load_profiles,
    read_profile,
    write_profile,
)


def entry(key: str, dur: float, **kw) -> ProfileEntry:
    return ProfileEntry(key=key, op=key.split("|")[0], family="matmul", dtype="bfloat16", dur_us=dur, **kw)


def test_round_trip_sorted_and_gz(tmp_path):
    h = ProfileHeader(gpu="h100", torch="2.11", cuda="13.0", clocks={"sm_mhz": "1980"}, date="2026-11-23")
    es = [entry("b|x", 2.0, launch_us=4.5, host_gap_us=None), entry("a|x", 1.23456)]
    for name in ("p.jsonl", "p.jsonl.gz"):
        path = write_profile(tmp_path / name, h, es)
        h2, got = read_profile(path)
        assert h2.gpu == "h100" and h2.clocks == {"sm_mhz": "1980"}
        assert list(got) == ["a|x", "b|x"]
        assert got["a|x"].dur_us == pytest.approx(1.235) and got["b|x"].launch_us == 4.5
    with gzip.open(tmp_path / "p.jsonl.gz", "rt") as f:
        text = f.read().splitlines()
    assert '"format":"phantora-profile"' in text[0] and text[1].startswith('{"key":"a|x"')


def test_later_file_wins_and_other_gpus_are_skipped(tmp_path):
    write_profile(tmp_path / "d" / "1.jsonl", ProfileHeader(gpu="h100"), [entry("k", 1.0), entry("only1", 5.0)])
    write_profile(tmp_path / "d" / "2.jsonl", ProfileHeader(gpu="h100"), [entry("k", 2.0)])
    write_profile(tmp_path / "d" / "3.jsonl", ProfileHeader(gpu="h200"), [entry("k", 9.0)])
    merged, headers = load_profiles([tmp_path / "d"], gpu="h100")
    assert merged["k"].dur_us == 2.0 and merged["only1"].dur_us == 5.0 and len(headers) == 2
    merged, _ = load_profiles([tmp_path / "d" / "2.jsonl", tmp_path / "d" / "1.jsonl"], gpu="h100")
    assert merged["k"].dur_us == 1.0
    with pytest.raises(ProfileFormatError, match=r"3\.jsonl:1: field 'gpu'"):
        load_profiles([tmp_path / "d" / "3.jsonl"], gpu="h100", strict=True)


def test_bad_files_name_file_line_and_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"format":"phantora-profile","version":1,"gpu":"h100"}\n{"key":"k","op":"o","family":"f","dtype":"x"}\n')
    with pytest.raises(ProfileFormatError, match=r"bad.jsonl:2: field 'dur_us' is missing"):
        read_profile(p)
    p.write_text('{"format":"other","version":1}\n')
    with pytest.raises(ProfileFormatError, match="field 'format'"):
        read_profile(p)
    with pytest.raises(ProfileFormatError, match="no such profile"):
        load_profiles([tmp_path / "nope.jsonl"])
