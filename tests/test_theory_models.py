"""Prior knowledge (section 4.3), Thm 6 and Thm 7 (section 3): properties, reductions checked two
ways, and pinned counterexamples for the readings the suite shows false."""

import numpy as np
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.divergences import jsd, kl, mixture
from modgen_bench.exact import solve, solve_fixed
from modgen_bench.exact.conic import ConicFailure
from modgen_bench.testing import strategies as mst
from theory_checks import prior, thm6, thm7
from theory_checks.certified import certified_solve
from theory_checks.fits import fit_loglinear, fit_mixture, loglinear
from theory_checks.verdict import FLOOR

# --- prior knowledge ----------------------------------------------------------------------------


@given(mst.problems(min_p=2, max_p=3, max_N=6), st.data())
def test_polytope_values_reduce_to_the_exact_core(prob, data):
    """Lambda = the simplex gives V*; Lambda = {lam} gives the fixed-lam values, the latter
    against cvxpy (an independent solver): V({lam}) = KL(P_lam || q), W({lam}) = that + JSD_lam."""
    sol = certified_solve(prob, "union")
    V = np.eye(prob.p)
    gap = max(sol.duality_gap, 0.0) + 1e-9
    assert prior.value_original(prob, V)[0] == pytest.approx(sol.value, abs=gap)
    W, cert = prior.value_linearised(prob, V)
    assert abs(W - sol.value) <= cert + gap
    lam = data.draw(mst.mixtures(p=prob.p))
    try:
        fixed = solve_fixed(prob, lam, method="cvxpy", support="union")
    except ConicFailure:
        reject()  # the reference solver gave up, not the claim
    assert prior.value_original(prob, lam[None, :])[0] == pytest.approx(fixed.value, abs=1e-6)
    assert prior.value_linearised(prob, lam[None, :])[0] == pytest.approx(
        fixed.value + jsd(lam, prob.P), abs=1e-6
    )


@given(
    mst.problems(min_p=2, max_p=3, max_N=6), mst.mixtures(p=3, vertex=False), st.floats(0.01, 0.9)
)
def test_lipschitz_bound_for_the_linearised_game(prob, c, t):
    c = c[: prob.p] / c[: prob.p].sum()
    V = prior.shrunk_simplex(prob.p, c, t)
    full = solve(prob, support="union")
    W, cert = prior.value_linearised(prob, V)
    Wt, cert_t = prior.value_linearised(prob, prior.shrunk_simplex(prob.p, c, min(1.0, 2 * t)))
    assert Wt <= W + cert + cert_t + FLOOR  # monotone
    slack = prior.lipschitz_constant(prob) * prior.hausdorff_to_simplex(V) - (full.value - W)
    assert slack >= -(cert + max(full.duality_gap, 0.0) + FLOOR)


def test_hausdorff_distance_of_a_shrunk_simplex():
    c = np.array([0.2, 0.3, 0.5])
    # nearest point of Lambda_t to e_k is (1 - t) e_k + t c: distance 2 t (1 - c_k)
    assert prior.hausdorff_to_simplex(prior.shrunk_simplex(3, c, 0.1)) == pytest.approx(0.16)


def test_original_game_breaks_the_lipschitz_constant():
    """Pinned counterexample from `check prior` (seed 0): the constant covers only the
    linearised game; the original one moves like t log(1/t)."""
    prob = instances.make("near_deterministic", 832101347, p=2, N=6)
    c = np.array([0.5875, 0.4125])
    V = prior.shrunk_simplex(2, c, 0.01)
    full = solve(prob, support="union")
    gain = prior.lipschitz_constant(prob) * prior.hausdorff_to_simplex(V)
    assert full.value - prior.value_original(prob, V)[0] > gain + 1e-3
    assert full.value - prior.value_linearised(prob, V)[0] <= gain


# --- Thm 6 ----------------------------------------------------------------------------------------


def test_loglinear_fit_matches_moments():
    rng = np.random.default_rng(0)
    phi, a = rng.normal(size=(9, 3)), rng.dirichlet(np.ones(9))
    theta, cert = fit_loglinear(a, phi)
    np.testing.assert_allclose(loglinear(theta, phi) @ phi, a @ phi, atol=1e-10)
    assert cert <= 1e-14


@given(
    st.integers(0, 10_000),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.sampled_from([2, 5, 9]),
    st.floats(0, 1),
)
def test_thm6_monolith_lower_bound(seed, overlap, d, lam0):
    w = thm6._world(seed, overlap, d)
    lam = np.array([lam0, 1 - lam0])
    mono, cert = w.monolith(lam)
    assert mono - (lam @ w.eps - jsd(lam, w.P)) >= -(cert + w.cert + FLOOR)


def test_thm6_condition_does_not_make_the_robust_gate_win():
    """Pinned counterexample from `check thm6` (seed 0): max eps < JSD_lam, yet the refitted
    monolith beats the robust gate by ~0.23 nats."""
    w = thm6._world(1197096737, 0.0, 9)
    lam = np.array([0.1, 0.9])
    assert w.eps.max() < jsd(lam, w.P)
    mono, _ = w.monolith(lam)
    g_rob, g_fix, _ = w.gates(lam)
    assert mono < g_rob - 0.2
    assert g_fix <= mono  # the gate refitted at lam still wins


# --- Thm 7 ----------------------------------------------------------------------------------------


def _tv_residuals(seed, lam=(0.5, 0.25, 0.25)):
    out = {}
    lam = np.asarray(lam)
    for reading, P, project in thm7._readings(np.random.default_rng(seed)):
        pis = np.stack([project(Pk)[0] for Pk in P])
        M = project(mixture(lam, P))[0]
        target = project(lam @ pis)[0] if reading.startswith("exp. family:") else lam @ pis
        out[reading] = thm7.tv(M, target)
    return out


@given(st.integers(0, 10_000))
def test_thm7_holds_where_the_family_is_unrestricted_or_well_specified(seed):
    r = _tv_residuals(seed)
    assert r["unrestricted"] == 0.0
    assert r["mixture family, domains in F"] <= 1e-3
    assert r["exp. family: M_lam = Proj(sum lam pi_k)"] <= 1e-6


def test_thm7_fails_for_misspecified_and_exponential_families():
    """Pinned counterexamples from `check thm7` (seed 0): the refit is not the mixture of the
    per-domain optima outside those cases."""
    assert _tv_residuals(1222173781, (0.5, 0, 0.5))["mixture family, misspecified"] > 0.1
    assert _tv_residuals(177883263, (0.5, 0.5, 0))["exponential family"] > 0.1


def test_fit_mixture_is_optimal():
    rng = np.random.default_rng(1)
    B, a = rng.dirichlet(np.ones(6), size=3), rng.dirichlet(np.ones(6))
    w, cert = fit_mixture(a, B)
    assert cert <= 1e-6
    for _ in range(20):  # no random point of the simplex does better
        v = rng.dirichlet(np.ones(3))
        assert kl(a, w @ B) <= kl(a, v @ B) + cert


def test_thm6_barrier_fails_for_a_larger_monolith_family():
    """Pinned from `check thm6` (seed 0): with 2 more features than the experts, the refitted
    monolith goes below lam . eps - JSD_lam, while in the experts' own family it cannot."""
    w_big = thm6._world(9, 0.5, 3, extra=thm6.D_EXTRA)
    w_same = thm6._world(9, 0.5, 3)
    assert np.allclose(w_big.eps, w_same.eps)  # the same experts
    lam = np.array([0.5, 0.5])
    bound = thm6.lower_bound(lam, w_same.eps, w_same.P)
    big, c_big = w_big.monolith(lam)
    same, c_same = w_same.monolith(lam)
    assert same >= bound - (c_same + w_same.cert + FLOOR)
    assert big < bound - 0.1  # measured: 0.159 below
    assert big <= same + c_big + c_same + FLOOR  # a larger family only fits better
