"""The tight and tolerance-edge fuzz families (`testing.hard.EDGE_FAMILIES`): every answer is
optimal and right, or infeasible exactly when the floor and ceiling sums say so (computed with
`math.fsum`, independently of the solver)."""

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from modgen_bench.bench.fuzz import _really_optimal, expected_infeasible, fuzz, random_instance
from modgen_bench.exact import solve, solve_fixed
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing import strategies as mst
from modgen_bench.testing.hard import ALL_FAMILIES, EDGE_FAMILIES, edge_arrays

supports = st.sampled_from(["domains", "union"])


def _check(prob, support, say=note):
    sol = solve(prob, support=support)
    label = expected_infeasible(prob, support)
    say(f"{sol.status} {sol.solver} label={label} {sol.reason[:200]}")
    if label is not None:
        assert (sol.status == "infeasible") == label
    if sol.status != "infeasible":
        assert sol.optimal and _really_optimal(prob, sol)
    return sol


@given(mst.edge_problems(), supports)
def test_edge_families_answer_right_or_infeasible_by_the_sums(prob, support):
    _check(prob, support)


@given(mst.edge_problems(max_p=8, max_N=40), supports, st.integers(0, 2**32 - 1))
def test_fixed_mixture_on_edge_families(prob, support, seed):
    lam = np.random.default_rng(seed).dirichlet(np.ones(prob.p))
    sol = solve_fixed(prob, lam, support=support)
    label = expected_infeasible(prob, support)
    if label is not None:
        assert (sol.status == "infeasible") == label
    if sol.status != "infeasible":
        assert sol.optimal


def test_rounded_family_has_floors_above_one_and_they_are_infeasible():
    """One expert whose row sum is rounded by up to 2e-9: some floors exceed 1 + FEAS_TOL (G1
    empty from below), some ceilings fall short of 1 - FEAS_TOL, and those, and only those, are
    labelled infeasible; the rest certify."""
    rng = np.random.default_rng(0)
    labels = []
    for _ in range(60):
        P, E = edge_arrays(rng, "rounded", 1, 10, round_to=2e-9)
        prob = DiscreteProblem.from_arrays(P, E)
        labels.append(_check(prob, "union", print).status == "infeasible")
    assert 0 < sum(labels) < len(labels)


@pytest.mark.parametrize("family", EDGE_FAMILIES)
@pytest.mark.parametrize("p,N", [(1, 1), (1, 20_000), (64, 50), (8, 20_000)])
def test_edge_family_extremes(family, p, N):
    P, E = edge_arrays(np.random.default_rng(p * N), family, p, N, round_to=1e-12)
    prob = DiscreteProblem.from_arrays(P, E)
    for support in ("domains", "union"):
        _check(prob, support, print)


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_fuzz_draws_every_family_and_validates(seed):
    rng = np.random.default_rng(seed)
    for family in ALL_FAMILIES:
        prob, support, desc = random_instance(rng, family)
        assert desc.startswith(family) and support in ("domains", "union")


def test_fuzz_counts_no_wrong_answer_on_the_widened_families():
    res = fuzz(instances=150, seed=3)
    assert res["counts"]["wrong"] == 0 and res["counts"]["inaccurate"] == 0
    assert res["counts"]["infeasible"] > 0 and res["counts"]["optimal"] > 0
