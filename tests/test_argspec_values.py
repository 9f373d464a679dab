"""A spec's integer argument can carry its values (``_grouped_mm``'s ``offs``: group ends, not indices):
``profiles/argspec.py`` rebuilds the tensor with them instead of zeros, which would empty every group."""

from __future__ import annotations

import pytest
import torch

from profiles.argspec import UnreplayableError, call_spec, materialize


def test_values_fill_the_tensor_and_others_stay_random_or_zero():
    a, b = torch.empty(64, 32), torch.empty(4, 32, 16)
    offs = torch.empty(4, dtype=torch.int32)
    spec = call_spec(torch.ops.aten._grouped_mm.default, (a, b, offs), {})
    spec["args"][2]["values"] = [16, 32, 48, 64]
    _, args, _ = materialize(spec, "cpu")
    assert args[2].tolist() == [16, 32, 48, 64] and args[2].dtype == torch.int32
    assert args[0].std() > 0.5  # floating arguments keep N(0, 1)
    spec["args"][2] = {k: v for k, v in spec["args"][2].items() if k != "values"}
    assert materialize(spec, "cpu")[1][2].tolist() == [0, 0, 0, 0]


def test_values_of_the_wrong_length_are_refused():
    spec = call_spec(torch.ops.aten.add.Tensor, (torch.empty(3, dtype=torch.int64), 1), {})
    spec["args"][0]["values"] = [1, 2]
    with pytest.raises(UnreplayableError, match="2 values for a tensor of shape"):
        materialize(spec, "cpu")
