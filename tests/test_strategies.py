"""The public hypothesis strategies (modgen_bench.testing.strategies) draw what they promise."""

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from modgen_bench.gates import support_mask
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing import strategies as mst


@given(st.data(), st.integers(1, 9))
def test_distributions_sum_to_one_on_the_requested_support(data, N):
    k = data.draw(st.integers(1, N))
    d = data.draw(mst.distributions(N=N, support_size=k))
    assert d.shape == (N,) and abs(d.sum() - 1) < 1e-12
    assert np.count_nonzero(d) == k and d.min() >= 0
    assert d[d > 0].min() >= mst.MIN_MASS / k - 1e-15


@given(st.data())
def test_distributions_reject_an_impossible_support(data):
    with pytest.raises(ValueError, match="support_size"):
        data.draw(mst.distributions(N=3, support_size=4))


@given(mst.mixtures(min_p=1, max_p=6))
def test_mixtures_lie_on_the_simplex(lam):
    assert lam.min() >= 0 and abs(lam.sum() - 1) < 1e-12


@given(mst.mixtures(p=4, vertex=True), mst.mixtures(p=4, vertex=False))
def test_mixtures_vertex_switch(vertex, interior):
    assert sorted(vertex.tolist()) == [0, 0, 0, 1]
    assert interior.min() > 0


@given(mst.problems(min_p=1, max_p=4, max_N=6))
def test_problems_are_valid_and_sized(prob):
    assert isinstance(prob, DiscreteProblem)
    assert 1 <= prob.p <= 4 and prob.p <= prob.N <= 6
    assert np.all(prob.E > 0)  # experts="full"


@given(mst.disjoint_problems(min_p=2, max_p=4))
def test_disjoint_problems_have_disjoint_domains_and_experts(prob):
    assert np.all((prob.P > 0).sum(axis=0) <= 1)
    np.testing.assert_array_equal(prob.E > 0, prob.P > 0)


@given(mst.problems(max_p=3, leak=0.3))
def test_leak_puts_expert_mass_outside_x0(prob):
    assert not support_mask(prob, "domains")[-1]  # the added outcome is outside X0
    mass = prob.E[:, -1]
    assert np.all(mass >= mst.MIN_MASS * 0.3) and np.all(mass <= 0.3 + 1e-12)


@given(st.data())
def test_unknown_expert_support_lists_choices(data):
    with pytest.raises(ValueError, match="choose one of full, domains"):
        data.draw(mst.problems(experts="everywhere"))


@given(st.data(), st.integers(1, 6), st.integers(1, 4), st.booleans())
def test_gates_are_row_stochastic(data, N, p, constant):
    g = data.draw(mst.gates(N=N, p=p, constant=constant))
    assert g.shape == (N, p) and g.min() >= 0
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-12)
    if constant:
        assert np.all(g == g[0])


@given(mst.hard_problems())
def test_hard_problems_are_valid_and_sized(prob):
    assert isinstance(prob, DiscreteProblem)
    assert 2 <= prob.p <= 16 and 3 <= prob.N <= 200
    for A in (prob.P, prob.E):
        np.testing.assert_allclose(A.sum(axis=1), 1.0, atol=1e-12)
        assert A.min() >= 0


@pytest.mark.parametrize(
    "family, tiny, zeros", [("sparse", 1e-100, False), ("logmass", 1e-250, True)]
)
def test_hard_problems_reach_tiny_masses_and_exact_zeros(family, tiny, zeros):
    """The regime the issue names is reachable: entries below 1e-100 (and exact zeros)."""

    def hard(prob):
        A = np.concatenate([prob.P.ravel(), prob.E.ravel()])
        return bool(np.any((A > 0) & (A < tiny)) and (np.any(A == 0) or not zeros))

    prob = find(
        mst.hard_problems(families=[family]),
        hard,
        settings=settings(max_examples=300, database=None, derandomize=True),
    )
    assert hard(prob)


@given(mst.hard_problems(families=["leaking"]))
def test_hard_leaking_problems_have_expert_mass_outside_x0(prob):
    X0 = support_mask(prob, "domains")
    assert (~X0).any() and np.all(prob.E[:, ~X0].sum(axis=1) > 0)


@given(st.data())
def test_hard_arrays_reject_unknown_families_and_bad_blocks(data):
    from modgen_bench.testing.hard import hard_arrays

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="choose one of sparse, mixed, leaking, logmass"):
        hard_arrays(rng, "easy", 2, 5)
    with pytest.raises(ValueError, match="block must be in"):
        hard_arrays(rng, "leaking", 2, 5, block=5)
