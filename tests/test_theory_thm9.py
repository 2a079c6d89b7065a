"""Thm 9 (generalisation): the Rademacher estimates, the bound on fitted gates, excess vs m."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from modgen_bench import instances
from modgen_bench.exact import solve
from theory_checks import thm9
from theory_checks.fits import static_minimax


def test_tabular_rademacher_with_distinct_points_is_the_mean_max_of_two_signs():
    """Each outcome seen once, p = 2: sum_x max(s1, s2) / m has mean E max(s1, s2) = 1/2."""
    est = thm9.rademacher_tabular(np.ones(50, dtype=int), 2, np.random.default_rng(0), draws=400)
    assert est == pytest.approx(0.5, abs=0.03)      # s.e. = 0.5 / sqrt(50 * 400) ~ 0.004


def test_static_rademacher_of_a_single_gate_is_zero_and_grows_with_p():
    rng = np.random.default_rng(1)
    assert abs(thm9.rademacher_static(400, 1, rng, draws=2000)) < 0.01
    assert thm9.rademacher_static(400, 4, rng) > thm9.rademacher_static(400, 2, rng) > 0


@given(st.integers(0, 10_000), st.sampled_from([25, 400]))
def test_bound_holds_on_fitted_gates(seed, m):
    prob = instances.make("dirichlet", seed, **thm9.SIZES)
    best = {"tabular": solve(prob, support="union").value,
            "static": static_minimax(prob)["value"]}
    r = thm9.trial(prob, m, np.random.default_rng(seed), best)
    for name in ("tabular", "static"):
        assert r[name]["margin"] > 0
        assert r[name]["excess"] >= -1e-9         # nothing beats the best gate of its class


def test_excess_shrinks_with_m():
    prob = instances.make("dirichlet", 3, **thm9.SIZES)
    best = {"tabular": solve(prob, support="union").value,
            "static": static_minimax(prob)["value"]}
    def mean_excess(m):
        return np.mean([thm9.trial(prob, m, np.random.default_rng(t), best)["tabular"]["excess"]
                        for t in range(10)])
    assert mean_excess(1600) < mean_excess(25) / 4
