"""The discrete SPD step costs O(batch): inverse-CDF draws (no multinomial over all N outcomes) and
a sparse table-gate gradient stepped by SparseAdam (no dense optimiser pass over the N x p
table)."""

import numpy as np
import pytest
import torch

from modgen_bench import instances
from modgen_bench.algorithms.discrete import DiscreteSampler
from modgen_bench.algorithms.gates import make_gate
from modgen_bench.algorithms.spd import SPDConfig, train_spd
from modgen_bench.problem import DiscreteProblem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_draws_follow_each_row_and_skip_zero_mass():
    P = np.array([[0.5, 0.0, 0.25, 0.25, 0.0], [0.0, 0.1, 0.0, 0.0, 0.9]])
    s = DiscreteSampler(DiscreteProblem.from_arrays(P, P))
    g = torch.Generator().manual_seed(0)
    b = s.sample(g, 20000)
    for k in range(2):
        x = b.inputs[b.domain == k].numpy()
        freq = np.bincount(x, minlength=5) / len(x)
        assert np.all(freq[P[k] == 0] == 0)  # never a zero-mass outcome
        assert np.abs(freq - P[k]).max() < 0.015  # 4+ s.e. at n = 20000
    e = s.sample_experts(g, 10)
    assert e.in_support.all() and e.inputs.shape == (20,)


def test_table_gate_gradient_is_sparse_and_spd_steps_only_batch_rows():
    N, p = 50_000, 4
    problem = instances.make("dirichlet", 0, p=p, N=N)
    gate = make_gate("table", N, p)
    x = torch.tensor([3, 7, 3])
    gate(x).sum().backward()
    assert gate.logits.grad.is_sparse
    gate = make_gate("table", N, p)
    train_spd(gate, DiscreteSampler(problem), SPDConfig(steps=3, per_domain=8, log_every=3))
    moved = int((gate.logits.detach().abs().sum(dim=1) > 0).sum())
    assert 0 < moved <= 3 * 2 * p * 8  # only rows drawn in 3 steps


def test_weight_decay_needs_a_dense_table():
    problem = instances.make("dirichlet", 0, p=2, N=10)
    with pytest.raises(ValueError, match="weight_decay needs a dense gate"):
        train_spd(
            make_gate("table", 10, 2),
            DiscreteSampler(problem),
            SPDConfig(steps=1, weight_decay=0.1),
        )
    dense = make_gate("table", 10, 2, sparse=False)
    train_spd(dense, DiscreteSampler(problem), SPDConfig(steps=2, weight_decay=0.1, per_domain=4))
