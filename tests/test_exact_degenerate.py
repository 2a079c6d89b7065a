"""Tight and degenerate feasible sets: an empty G1 from below, one-point sets (lo = hi, a floor or
ceiling summing to 1 within rounding), the nu = 0 branch of the water level, and a finite dual
bound whenever the primal value is finite."""

import math

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench.divergences import kl
from modgen_bench.exact import solve, solve_fixed, solve_static, tolerance
from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.gates import FEAS_TOL, g1_feasibility
from modgen_bench.problem import DiscreteProblem

supports = st.sampled_from(["domains", "union"])


@pytest.mark.parametrize("support", ["domains", "union"])
def test_floor_above_one_is_infeasible_before_any_solver_runs(support):
    prob = DiscreteProblem.from_arrays([[0.5, 0.5]], [[0.5000003, 0.5000003]])
    feas = g1_feasibility(prob, support)
    assert not feas.feasible and feas.min_mass == pytest.approx(1.0000006, abs=1e-12)
    for sol in (solve(prob, support=support), solve_fixed(prob, [1.0], support=support)):
        assert sol.status == "infeasible" and sol.solver == "none"
        assert "1.0000006 > 1" in sol.reason and "renormalise" in sol.reason


@pytest.mark.parametrize("support", ["domains", "union"])
@pytest.mark.parametrize("offset", [-5e-10, 0.0, 5e-10])
def test_one_point_set_lo_equals_hi_is_solved_in_closed_form(support, offset):
    """All experts equal and summing to 1 + offset (within FEAS_TOL): q = lo is the only model;
    its value is max_k KL(P[k] || lo) (+ log s for a sum s above 1) and the bound is exact."""
    E = np.array([0.25, 0.75 + offset])
    P = np.array([[0.3, 0.7], [0.6, 0.4]])
    prob = DiscreteProblem.from_arrays(P, [E, E])
    expect = kl(P, E).max() + max(math.log(E.sum()), 0.0)
    sol = solve(prob, support=support)
    assert sol.optimal and sol.solver == "closed-form"
    assert abs(sol.value - expect) <= 1e-15 and abs(sol.duality_gap) <= tolerance(sol.value)
    np.testing.assert_array_equal(sol.model, E)
    fixed = solve_fixed(prob, [0.5, 0.5], support=support)
    assert fixed.optimal and np.array_equal(fixed.model, E)
    static = solve_static(prob)
    assert static.optimal and static.solver == "closed-form"
    assert abs(static.value - kl(P, E).max()) <= 1e-15


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 6),
    st.integers(1, 30),
    supports,
    st.floats(-0.9e-9, 0.9e-9),
)
def test_equal_experts_with_rounded_sums_always_certify(seed, p, N, support, offset):
    """lo = hi summing to 1 + offset, |offset| < FEAS_TOL: optimal, model = the experts' row."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(N), size=p)
    e = rng.dirichlet(np.ones(N))
    e[np.argmax(e)] += offset
    prob = DiscreteProblem.from_arrays(P, np.tile(e, (p, 1)))
    sol = solve(prob, support=support)
    note(f"{sol.status} {sol.solver} {sol.extra}")
    assert sol.optimal and np.array_equal(sol.model, e)
    assert abs(sol.value - (kl(P, e).max() + max(math.log(e.sum()), 0.0))) <= 1e-12


@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 6),
    st.integers(3, 30),
    st.floats(-0.9e-9, 0.9e-9),
    st.floats(0.0, 0.5),
)
def test_union_ceiling_within_rounding_of_one_keeps_q_in_its_box(seed, p, N, offset, blind):
    """Union convention, experts equal up to 1e-17 relative and the ceiling summing to 1 within
    rounding, domains blind to some outcomes: the nu = 0 branch fills the blind outcomes without
    pushing q below its floor or above its ceiling, and the answer certifies."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(N), size=p)
    P[:, rng.uniform(size=N) < blind] = 0.0
    P[:, 0] += 1e-3
    P /= P.sum(axis=1, keepdims=True)
    e = rng.dirichlet(np.ones(N))
    e[0] += offset
    E = np.tile(e, (p, 1)) * (1 + 1e-17 * rng.standard_normal((p, N)))
    prob = DiscreteProblem.from_arrays(P, E)
    inner = InnerProblem(prob, "union")
    for lam in (np.full(p, 1.0 / p), np.eye(p)[0]):
        q, _ = inner.model(lam)
        assert (q >= inner.lo).all() and (q <= inner.hi).all()
    sol = solve(prob, support="union")
    note(f"{sol.status} {sol.solver} {sol.extra}")
    assert sol.optimal and abs(sol.duality_gap) <= tolerance(sol.value)


@given(st.integers(0, 2**32 - 1), st.integers(2, 5), st.integers(2, 20), supports)
def test_floor_pinned_by_rounding_is_one_point(seed, p, N, support):
    """The floor sums to 1 + 5e-10 while one expert sits 1e-7 above it at one outcome (rows
    accepted within 1e-6): the only model within tolerance is q = lo, certified with a finite
    bound (the water level would drive nu to infinity)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(N), size=p)
    e = rng.dirichlet(np.ones(N))
    e[0] += 5e-10
    E = np.tile(e, (p, 1))
    E[-1, int(rng.integers(N))] += 1e-7
    prob = DiscreteProblem.from_arrays(P, E)
    sol = solve(prob, support=support)
    note(f"{sol.status} {sol.solver} {sol.extra}")
    assert sol.optimal and sol.solver == "closed-form" and np.array_equal(sol.model, e)
    assert np.isfinite(sol.extra["bound"][0])


def test_a_path_without_a_bound_still_gives_a_finite_interval(monkeypatch):
    """Weak duality at the uniform mixture and nu = 1 bounds V* from below whatever the paths
    did: an answer with a finite value never has the bound -inf."""
    from modgen_bench import instances
    from modgen_bench.exact import paths

    prob = instances.make("dirichlet", 3, p=3, N=20)
    truth = solve(prob).value

    def boundless(ctx):
        q, _ = ctx.inner.model(np.full(3, 1.0 / 3))
        return paths.PathResult(model=q, lam=np.full(3, 1.0 / 3), bound=-np.inf, path="boundless")

    monkeypatch.setattr(paths, "PATHS", {"b": paths.SolverPath("b", "waterfill", boundless)})
    sol = solve(prob)
    lo, hi = sol.extra["bound"]
    assert sol.status == "inaccurate" and np.isfinite(lo) and lo <= truth <= hi
    assert sol.extra.get("bound_from") == "dual-at-nu-1"


def test_feasibility_tolerance_is_the_one_slack():
    """Floor 1 + 2 FEAS_TOL: infeasible; 1 + FEAS_TOL / 2: answered (q = lo, closed form)."""
    P = [[0.5, 0.5]]
    for extra, feasible in ((2 * FEAS_TOL, False), (FEAS_TOL / 2, True)):
        prob = DiscreteProblem.from_arrays(P, [[0.5 + extra, 0.5]])
        sol = solve(prob)
        assert (sol.status != "infeasible") == feasible
        if feasible:
            assert sol.optimal and sol.extra["sum_target"] == pytest.approx(1 + extra, abs=1e-16)
