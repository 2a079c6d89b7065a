"""The SPD throughput table: its columns, and the cached path is the same SPD step on the same
data."""

import pytest
import torch

from modgen_bench.sequence.bench import throughput_table


def test_throughput_table_rows():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = throughput_table("cpu", setups=("successor",), per_domain=4, budget_s=0.05, max_steps=3)
    finally:
        torch.set_num_threads(old)
    assert t["mode"].tolist() == ["cached", "recompute"]
    assert (t["seqs_per_s"] > 0).all() and (t["steps"] >= 3).all()
    assert t["speedup"].iloc[0] == pytest.approx(t["seqs_per_s"].iloc[0] / t["seqs_per_s"].iloc[1])
    assert t["gate_params"].iloc[0] < t["expert_params"].iloc[0]


def test_unknown_setup_lists_the_choices():
    with pytest.raises(ValueError, match="successor"):
        throughput_table("cpu", setups=("nope",))
