"""The vectorised machinery of the theory checks: lockstep Nelder-Mead against scipy's, the
batched divergences against `modgen_bench.divergences` on padded stacks, the searches on
closed-form maxima, and the parallel run against the serial one (theory_checks/draws.py,
batched.py, __init__.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from modgen_bench import instances
from modgen_bench.divergences import jsd, kl, mixture, overlap_gain, sigma_weights, static_barrier
from modgen_bench.gates import constant_gate, evaluate_gate
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing import strategies as mst
from theory_checks import lemma1, prop2, run_all, thm3
from theory_checks.batched import Stack, jsd_many, kl_rows, logsumexp_rows, mix, overlap_gain_many
from theory_checks.certified import certified_solve
from theory_checks.draws import (
    lam_grid,
    nelder_mead_many,
    random_starts,
    search_lam,
    search_lam_many,
    softmax_rows,
)

#: stacks of 1-4 problems of one p (1-4) and N in [2, 8]: padding to the largest N is exercised
stacks = st.integers(1, 4).flatmap(
    lambda p: st.lists(mst.problems(min_p=p, max_p=p, max_N=8), min_size=1, max_size=4)
)


def _rosen_like(c):
    """A smooth test function with a NaN region (x[0] > 3), minimised at c."""
    return lambda x: np.nan if x[0] > 3 else float(np.sum((x - c) ** 2) + 0.3 * np.sum(x**4))


def test_nelder_mead_many_takes_scipys_path_exactly():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5):
        cs = rng.normal(size=(6, n))
        z0 = rng.normal(size=(6, n))
        z0[0] = 0.0  # zero coordinates start scipy's simplex with its 0.00025 step
        fs = [_rosen_like(c) for c in cs]
        x, fun = nelder_mead_many(
            lambda rows, X, fs=fs: np.array([fs[r](xi) for r, xi in zip(rows, X, strict=True)]),
            z0,
            maxiter=40 * n,
            xatol=1e-7,
            fatol=1e-12,
        )
        for b in range(6):
            ref = minimize(
                fs[b],
                z0[b],
                method="Nelder-Mead",
                options={"maxiter": 40 * n, "xatol": 1e-7, "fatol": 1e-12},
            )
            assert np.array_equal(x[b], ref.x) and fun[b] == ref.fun


def _search_lam_scipy(f, p, rng, starts=3, grid_steps=4):
    """The search as it was written with scipy: grid, then one Nelder-Mead run per start."""
    cands = list(lam_grid(p, grid_steps))
    vals = [f(lam) for lam in cands]
    order = np.argsort(vals)[::-1]
    best_lam, best = cands[order[0]], vals[order[0]]
    if p == 1:
        return best_lam, best
    inits = [np.log(np.clip(cands[i], 1e-6, None)) for i in order[:starts]]
    inits += [rng.normal(size=p) for _ in range(starts)]
    for z0 in inits:
        opts = {"maxiter": 120 * p, "xatol": 1e-7, "fatol": 1e-12}
        res = minimize(lambda z: -f(softmax(z)), z0, method="Nelder-Mead", options=opts)
        if -res.fun > best:
            best_lam, best = softmax(res.x), -res.fun
    return best_lam, best


@given(mst.problems(max_p=4, max_N=6), st.integers(0, 2**31 - 1), st.integers(1, 2))
def test_search_lam_equals_the_scipy_search(prob, seed, starts):
    pi = np.random.default_rng(seed).dirichlet(np.ones(prob.N))

    def f(lam):
        return float(kl(mixture(lam, prob.P), pi)) - 0.5 * jsd(lam, prob.P)

    new = search_lam(f, prob.p, np.random.default_rng(seed), starts=starts)
    old = _search_lam_scipy(f, prob.p, np.random.default_rng(seed), starts=starts)
    assert np.array_equal(new[0], old[0]) and new[1] == old[1]


def test_softmax_rows_is_scipys_softmax():
    z = np.random.default_rng(1).normal(size=(50, 4)) * 30
    assert np.array_equal(softmax_rows(z), np.array([softmax(row) for row in z]))


def test_random_starts_draw_what_the_scalar_search_drew():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(random_starts(a, 3, 2), np.array([b.normal(size=3) for _ in range(2)]))
    assert random_starts(a, 1, 2).shape == (0, 1) and a.normal() == b.normal()  # p = 1: none


def test_search_finds_an_interior_maximum():
    """max_lam -|lam - c|^2 over the simplex is at c (c interior): every run finds it."""
    rng = np.random.default_rng(2)
    for p in (2, 3, 4):
        cs = rng.dirichlet(np.ones(p), size=5)
        lam, val = search_lam_many(
            lambda rows, lams, cs=cs: -np.sum((lams - cs[rows]) ** 2, axis=1),
            p,
            np.array([random_starts(rng, p, 1) for _ in range(5)]),
            starts=1,
        )
        assert np.allclose(lam, cs, atol=1e-4) and np.all(val <= 0) and np.all(val >= -1e-8)


@given(stacks, st.integers(0, 2**31 - 1))
def test_search_finds_the_vertex_maximum_of_kl(problems, seed):
    """KL(P_lam || pi) is convex in lam: its max is max_k KL(P[k] || pi), at a vertex."""
    rng = np.random.default_rng(seed)
    st_ = Stack(problems)
    pis = [rng.dirichlet(np.ones(pr.N)) for pr in problems]
    pi = st_.pad(pis)
    p = problems[0].p
    z = np.array([random_starts(rng, p, 1) for _ in problems]).reshape(len(problems), -1, p)
    _, top = search_lam_many(lambda r, lams: kl_rows(mix(lams, st_.P[r]), pi[r]), p, z, 1)
    exact = [kl(pr.P, q).max() for pr, q in zip(problems, pis, strict=True)]
    assert np.allclose(top, exact, rtol=1e-12, atol=1e-12)


@given(stacks, st.integers(0, 2**31 - 1))
def test_batched_divergences_equal_the_scalar_ones(problems, seed):
    rng = np.random.default_rng(seed)
    st_ = Stack(problems)
    p, B = problems[0].p, len(problems)
    rows = np.repeat(np.arange(B), 3)
    lams = rng.dirichlet(np.ones(p), size=3 * B)
    lams[::3] = np.eye(p)[0]  # a vertex: zero weights
    qs = st_.pad([rng.dirichlet(np.ones(pr.N)) for pr in problems])
    for i, (r, lam) in enumerate(zip(rows, lams, strict=True)):
        pr = problems[r]
        assert mix(lams, st_.P[rows])[i, : pr.N] == pytest.approx(mixture(lam, pr.P), abs=1e-15)
        got = kl_rows(mix(lams, st_.P[rows]), qs[rows])[i]
        assert got == pytest.approx(float(kl(mixture(lam, pr.P), qs[r, : pr.N])), abs=1e-13)
        assert jsd_many(st_, rows, lams)[i] == pytest.approx(jsd(lam, pr.P), abs=1e-13)
        assert np.allclose(st_.eps[r], kl(pr.P, pr.E), atol=1e-13)


@given(stacks)
def test_overlap_gain_and_logsumexp_equal_the_scalar_ones(problems):
    st_ = Stack(problems)
    sigma = softmax_rows(st_.eps)
    lam = np.array([np.eye(pr.p)[-1] * 0.5 + 0.5 / pr.p for pr in problems])
    got = overlap_gain_many(st_, lam, sigma)
    for b, pr in enumerate(problems):
        assert np.allclose(sigma[b], sigma_weights(kl(pr.P, pr.E)), atol=1e-15)
        assert got[b] == pytest.approx(overlap_gain(lam[b], pr.P, pr.E, sigma[b]), abs=1e-12)
        assert logsumexp_rows(st_.eps[b]) == pytest.approx(static_barrier(st_.eps[b]), abs=1e-13)
    assert logsumexp_rows(np.array([-np.inf, -np.inf])) == logsumexp([-np.inf, -np.inf])


@given(mst.problems(max_p=3, max_N=6, leak=0.2), st.data())
def test_prop2_graded_side_is_the_graded_gate(prob, data):
    lam = data.draw(mst.mixtures(p=prob.p))
    model = evaluate_gate(prob, constant_gate(lam, prob.N), "domains")["model"]
    want = float(lam @ kl(prob.P, prob.E) - kl(mixture(lam, prob.P), model))
    assert prop2.margin_graded(prob, lam) == pytest.approx(want, abs=1e-12)


@given(mst.problems(max_p=3, max_N=6), st.sampled_from(["union", "domains"]), st.data())
def test_thm3_bounds_equal_the_formula(prob, support, data):
    sol = certified_solve(prob, support)
    if not sol.optimal:
        return
    b = thm3.Bound(prob, support, sol)
    lam = data.draw(mst.mixtures(p=prob.p))
    eps = kl(prob.P, prob.E)
    const = static_barrier(eps) - overlap_gain(sol.lam, prob.P, prob.E, sigma_weights(eps))
    assert b.const == pytest.approx(const, abs=1e-12)
    assert b.bound(lam) == pytest.approx(const - jsd(lam, prob.P), abs=1e-12)
    assert b.actual(lam) == pytest.approx(float(kl(mixture(lam, prob.P), sol.model)), abs=1e-12)
    Z = evaluate_gate(prob, constant_gate(b.sigma, prob.N), support)["Z"]
    assert b.sigma_in_g1 == (abs(Z - 1.0) <= 1e-12)


def test_parallel_run_equals_serial():
    """Claims and their mutations in two worker processes: the same verdicts and mutation
    results, in the same order, as one after another in this process."""
    names = ["prop2", "lemma1", "identities", "lam_star"]
    serial = run_all(names, 4, 3, jobs=1, power_budget=2)
    parallel = run_all(names, 4, 3, jobs=2, power_budget=2)
    assert [v.row() for v in serial.verdicts] == [v.row() for v in parallel.verdicts]
    assert [r.row() for r in serial.mutation_results] == [
        r.row() for r in parallel.mutation_results
    ]
    assert list(serial.seconds) == names and len(serial.mutation_results) == 11


@given(
    st.lists(mst.problems(max_p=3, max_N=5, leak=0.6), min_size=1, max_size=7),
    st.sampled_from(["domains", "union"]),
    st.integers(2, 4),
)
def test_block_lp_answers_as_one_lp_per_problem(problems, support, chunk):
    """Block-diagonal LPs of a few problems (some with an empty G1 under `domains`) give each
    problem the answer of its own LP."""
    many = lemma1.g1_nonempty_lp_many(problems, support, chunk=chunk)
    assert many == [lemma1.g1_nonempty_lp(pr, support) for pr in problems]


def test_block_lp_falls_back_when_a_block_is_infeasible(monkeypatch):
    """A chunk the criterion wrongly calls non-empty makes its block LP infeasible: every
    problem of the chunk then gets its own LP, and the empty one is found."""
    empty = DiscreteProblem.from_arrays([[0.5, 0.5, 0.0]], [[0.45, 0.45, 0.1]])
    full = instances.make("dirichlet", 1, p=1, N=3)
    monkeypatch.setattr(lemma1, "margin", lambda problem, support: 1.0)
    assert lemma1.g1_nonempty_lp_many([full, empty, full], "domains") == [True, False, True]
