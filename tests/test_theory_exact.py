"""The exact claims as properties over random problems, and pinned counterexamples for the
claims the suite shows false (PAPER.md sections 1-4.4; theory_checks/*)."""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.divergences import entropy, kl, static_barrier
from modgen_bench.exact import solve, solve_static
from modgen_bench.gates import g1_feasibility
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing import strategies as mst
from theory_checks import identities, lam_star, lemma1, prop2, thm3
from theory_checks import static_barrier as barrier
from theory_checks.certified import certified_solve
from theory_checks.draws import search_lam
from theory_checks.fits import static_minimax
from theory_checks.verdict import FLOOR, Tally

rngs = st.integers(0, 2**31 - 1).map(np.random.default_rng)


def tol(certificate):
    """The checks' tolerance (`Tally.add`): a certificate, never negative, plus the floor."""
    return max(certificate, 0.0) + FLOOR


# --- Lemma 1 ---------------------------------------------------------------------------------


@given(mst.problems(max_p=3, max_N=6, leak=0.5))
def test_lemma1_union_is_never_empty(prob):
    assert lemma1.margin(prob, "union") >= -FLOOR  # sum_k max >= sum E_0 = 1 (round-off)


@given(mst.problems(max_p=3, max_N=6, leak=0.5), st.sampled_from(["domains", "union"]))
def test_lemma1_criterion_matches_lp(prob, support):
    m = lemma1.margin(prob, support)
    if abs(m) > 1e-9:
        assert (m > 0) == lemma1.g1_nonempty_lp(prob, support)


def test_lemma1_search_finds_an_empty_g1_from_a_feasible_start():
    start, _ = lemma1._leaking(11, np.array([-6.0, -3.0]))
    assert lemma1.margin(start, "domains") > 0
    t = Tally("lemma1", "domains")
    lemma1.search_counterexample(11, "domains", t)
    v = t.verdict()
    assert v.status == "fails" and v.worst_margin < -0.1
    assert not g1_feasibility(v.counterexample, "domains").feasible
    assert solve(v.counterexample, support="domains").status == "infeasible"
    assert solve(v.counterexample, support="union").optimal


def test_lemma1_pinned_counterexample():
    prob = DiscreteProblem.from_arrays([[1.0, 0.0]], [[0.9, 0.1]])
    assert lemma1.margin(prob, "domains") == pytest.approx(-0.1, abs=1e-15)
    assert not lemma1.g1_nonempty_lp(prob, "domains") and lemma1.g1_nonempty_lp(prob, "union")


# --- identities -------------------------------------------------------------------------------


@given(mst.problems(max_p=4, max_N=7), st.data())
def test_jsd_identity(prob, data):
    lam = data.draw(mst.mixtures(p=prob.p))
    pi = data.draw(mst.distributions(N=prob.N))
    note(f"lam={lam}, pi={pi}")
    assert abs(identities.jsd_residual(lam, prob.P, pi)) <= 1e-12 * (1 + kl(prob.P, pi).max())


@given(mst.problems(min_p=2, max_p=3, max_N=6), rngs)
def test_vertex_property_and_equal_game_values(prob, rng):
    sol = certified_solve(prob, "union")
    P = prob.P
    _, top = search_lam(lambda lam: float(kl(lam @ P, sol.model)), prob.p, rng)
    assert top <= sol.value + 1e-12
    assert abs(top - sol.value) <= tol(sol.duality_gap)


def test_original_game_has_no_saddle_point():
    prob = instances.make("disjoint", 0, p=2, N=6)
    sol = solve(prob, support="union")
    maxmin = identities.maxmin_original(prob, np.random.default_rng(0))
    assert maxmin < sol.value - 0.1  # JSD_lam separates them: log 2 at most


# --- Prop 2 -------------------------------------------------------------------------------------


@given(mst.problems(max_p=4, max_N=7, leak=0.3), st.data())
def test_prop2(prob, data):
    lam = data.draw(mst.mixtures(p=prob.p))
    assert prop2.margin_raw(prob, lam) >= -FLOOR
    assert prop2.margin_graded(prob, lam) >= prop2.margin_raw(prob, lam) - FLOOR


# --- static-gate barrier ------------------------------------------------------------------------


@given(mst.disjoint_problems(min_p=2, max_p=4, max_N=8))
def test_static_barrier_with_disjoint_experts(prob):
    m, cert, at_sigma, _ = barrier.margin(prob)
    assert m >= -tol(cert)
    assert abs(at_sigma) <= 1e-12  # attained at sigma = softmax(eps)


@pytest.mark.parametrize("leak", [0.05, 0.3])
def test_static_barrier_fails_with_leaking_experts(leak):
    """Pinned: delta domains, each expert leaks `leak` onto the other outcome. eps_k = -log(1-l),
    so the barrier is log 2 - log(1 - l), but the static gate w = (1/2, 1/2) reaches log 2."""
    prob = DiscreteProblem.from_arrays([[1, 0], [0, 1]], [[1 - leak, leak], [leak, 1 - leak]])
    bound = static_barrier(kl(prob.P, prob.E))
    assert bound == pytest.approx(np.log(2) - np.log(1 - leak))
    m, cert, _, _ = barrier.margin(prob)
    assert m == pytest.approx(np.log(1 - leak), abs=1e-6) and m < -cert


def test_static_minimax_agrees_with_cvxpy():
    prob = instances.make("overlap", 5, p=3, N=9)
    fast, ref = static_minimax(prob), solve_static(prob)
    assert fast["duality_gap"] <= 1e-7
    assert abs(fast["value"] - ref.value) <= fast["duality_gap"] + ref.duality_gap + 1e-9


# --- Thm 3 --------------------------------------------------------------------------------------


@given(mst.problems(min_p=1, max_p=3, max_N=6), rngs)
def test_thm3_bound_holds_for_every_lam(prob, rng):
    b = thm3.Bound(prob, "union")
    lam, m = b.worst(rng)
    note(f"worst lam {lam}, margin {m}")
    assert m >= -tol(b.sol.duality_gap)


@given(mst.problems(min_p=1, max_p=3, max_N=6, leak=0.05), rngs)
def test_thm3_holds_when_sigma_is_outside_g1_but_g1_is_not_empty(prob, rng):
    b = thm3.Bound(prob, "domains")
    if b.sol.optimal:
        assert not b.sigma_in_g1
        assert b.worst(rng)[1] >= -tol(b.sol.duality_gap)


@given(mst.disjoint_problems(min_p=2, max_p=4), st.data())
def test_thm3_is_tight_for_exact_experts_on_disjoint_domains(prob, data):
    exact = DiscreteProblem.from_arrays(prob.P, prob.P)
    b = thm3.Bound(exact, "union")
    lam = data.draw(mst.mixtures(p=prob.p))
    assert b.sol.value == pytest.approx(np.log(prob.p), abs=1e-9)
    assert abs(b.margin(lam)) <= 1e-9
    assert b.bound(lam) == pytest.approx(np.log(prob.p) - entropy(lam), abs=1e-9)


# --- least-favourable mixture -------------------------------------------------------------------


@given(mst.problems(min_p=2, max_p=4, max_N=7))
def test_equalisation_on_the_support_of_lam_star(prob):
    sol = certified_solve(prob, "union")
    assert lam_star.equalisation_margin(sol) >= -tol(sol.duality_gap)


def test_lam_star_weights_are_not_the_best_static_gate():
    """Pinned counterexample found by `check lam_star` (seed 0)."""
    prob = instances.make("disjoint", 1688904476, p=4, N=7, leak=0.0)
    sol = solve(prob, support="union")
    worst, cert = lam_star.static_worst(prob, sol.lam)
    best = static_minimax(prob)
    assert worst - best["value"] > 0.05 > cert + best["duality_gap"]


def test_a_negative_gap_never_widens_the_tolerance():
    """Identical point-mass domains and identical experts (only q = E is feasible): the exact
    core's dual bound can explode here (reported upstream); whatever gap it returns, the check's
    tolerance stays at the floating-point floor."""
    E = [0.1, 0.1, 0.4, 0.1, 0.2, 0.1]
    prob = DiscreteProblem.from_arrays([[1, 0, 0, 0, 0, 0]] * 2, [E, E])
    sol = certified_solve(prob, "union")
    assert sol.value == pytest.approx(-np.log(0.1), abs=1e-12)
    t = Tally("c", "r")
    t.add(-2 * FLOOR, "x", certificate=min(sol.duality_gap, 0.0))
    assert t.verdict().status == "fails" and t.worst_tolerance == FLOOR


@pytest.mark.parametrize("cert", [1.5, np.inf, np.nan, 2e-3])
def test_an_uncertified_solve_is_a_solver_failure_not_a_wider_tolerance(cert):
    """A tolerance of `margin >= -(certificate + 1e-9)` would let a failed solve (gap 1.5) pass."""
    t = Tally("c", "r")
    t.add(1e-3, "good", certificate=1e-10)
    t.add(-0.5, "failed solve", certificate=cert)
    v = t.verdict()
    assert v.status == "inconclusive" and v.solver_failures == 1 and v.instances == 1
    assert t.worst_tolerance <= 1e-10 + FLOOR and "failed solve" in v.note
    assert v.row()["solver_failures"] == 1
    t.add(-1e-6, "certified violation", certificate=1e-10)
    assert t.verdict().status == "fails"  # a certified counterexample still fails the claim


def test_certified_solve_marks_an_uncertified_answer(monkeypatch):
    """An answer no solver path certifies reaches the tally as a solver failure."""
    from modgen_bench import exact
    from theory_checks import certified

    prob = instances.make("overlap", 3, p=3, N=12)
    monkeypatch.setattr(
        certified,
        "solve",
        lambda problem, method, support: exact.solve(problem, method, support, tol=-1.0),
    )  # a tolerance nothing meets
    sol = certified_solve(prob, "union")
    assert sol.status == "inaccurate" and sol.duality_gap == np.inf
    assert abs(sol.extra["gap"]) <= 1e-9  # the real gap is kept beside it
    t = Tally("c", "r")
    t.add(0.0, "x", certificate=sol.duality_gap)
    assert t.verdict().status == "inconclusive"
