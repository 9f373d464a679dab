"""Keys and the bytes model of Inductor's fused kernels (profiles.families.triton; issue 18)."""

from __future__ import annotations

import pytest

from profiles.families.triton import (
    CompiledKernelProfiles,
    TritonBytesModel,
    fit,
    kernel_key,
    kind_of,
    launch_key,
)


class _T:
    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def numel(self) -> int:
        return self.n

    def element_size(self) -> int:
        return self.size


def test_key_drops_the_graph_index_and_keeps_sizes_and_dtypes():
    params = [("in_ptr0", "*bf16"), ("out_ptr0", "*fp32"), ("xnumel", "i32"), ("r0_numel", "i32")]
    key, nbytes = launch_key("triton_red_fused_native_layer_norm_7", params, [_T(64, 2), _T(8, 4), 8, 8])
    assert key == "triton_red_fused_native_layer_norm|r0_numel=8,xnumel=8|bf16,fp32"
    assert nbytes == 64 * 2 + 8 * 4
    assert key == kernel_key("triton_red_fused_native_layer_norm_12", {"xnumel": 8, "r0_numel": 8}, ["bf16", "fp32"])
    assert kind_of("triton_per_fused_sum_0") == "persistent_reduction" and kind_of("triton_poi_fused_add_1") == "pointwise"


def test_fit_recovers_floor_and_bandwidth():
    rows = [{"kernel": "triton_poi_fused_add_0", "bytes": b, "us": 2.0 + b / 3e6} for b in (1e3, 1e5, 1e7, 1e9)]
    p = fit(rows, "synthetic")["pointwise"]
    assert p.floor_us == pytest.approx(2.0, rel=1e-6) and p.bandwidth_gbps == pytest.approx(3000.0, rel=1e-6)
    t, source = TritonBytesModel({"pointwise": p}).predict("triton_poi_fused_mul_3", 3_000_000)
    assert t == pytest.approx(3.0) and source == "fit:synthetic"


def test_profiles_answer_exact_keys_and_never_use_heldout_rows():
    rows = [{"key": "k_fit", "kernel": "triton_poi_fused_a_0", "bytes": 100, "us": 5.0, "split": "fit"},
            {"key": "k_fit", "kernel": "triton_poi_fused_a_0", "bytes": 100, "us": 7.0, "split": "fit"},
            {"key": "k_fit", "kernel": "triton_poi_fused_a_0", "bytes": 100, "us": 6.0, "split": "fit"},
            {"key": "k_held", "kernel": "triton_poi_fused_b_0", "bytes": 100, "us": 50.0, "split": "heldout"}]
    prof = CompiledKernelProfiles(rows)
    assert prof.time("k_fit", "triton_poi_fused_a_0", 100) == (6.0, "profile")
    assert prof.time("k_held", "triton_poi_fused_b_0", 100)[1] == "family"


def test_shipped_h200_recordings_load():
    prof = CompiledKernelProfiles.for_gpu("h200")
    assert prof.exact and set(prof.model.params) >= {"pointwise", "reduction", "persistent_reduction"}
