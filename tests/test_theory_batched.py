"""The vectorised fits and solves of the theory checks against one-problem references.

Each batched routine must be at least as accurate as the generic solver it replaced (compared on
the objective, since a worse fit can hide or fake a violation) and carry a valid certificate;
the thm9 cell sampler must reproduce the lone trials exactly (same generators, same draws).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from modgen_bench import instances
from modgen_bench.divergences import kl
from modgen_bench.exact import solve_fixed, static_certificate
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing import strategies as mst
from theory_checks import prior, thm9
from theory_checks import static_barrier as barrier
from theory_checks.batch_solves import fixed_gates, linearised_values
from theory_checks.certified import static_solve
from theory_checks.fits import fit_loglinear_many, fit_mixture_many, loglinear
from theory_checks.static_gates import static_minimax, static_minimax_ipm, static_minimax_many

seeds = st.integers(0, 2**31 - 1)


def _kl_rows(A, Q):
    return np.array([float(kl(a, q)) for a, q in zip(A, Q, strict=True)])


@given(seeds, st.integers(1, 12), st.integers(4, 14), st.integers(1, 5))
def test_batched_loglinear_fit_matches_a_generic_optimiser(seed, B, N, d):
    """Every row's KL(a || q_theta) is at most that of BFGS on the same convex objective, and the
    certificate bounds the row's suboptimality against it."""
    rng = np.random.default_rng(seed)
    A = rng.dirichlet(np.full(N, 0.5), size=B)
    A[: B // 2, : N // 3] = 0.0  # targets with zeros: the optimum is off the family's interior
    A /= A.sum(axis=1, keepdims=True)
    phi = rng.normal(size=(B, N, d))
    theta, cert = fit_loglinear_many(A, phi)
    ours = _kl_rows(A, loglinear(theta, phi))
    for b in range(B):

        def f(th, b=b):
            z = phi[b] @ th
            top = z.max()
            return top + np.log(np.exp(z - top).sum()) - th @ (A[b] @ phi[b])

        ref = minimize(f, np.zeros(d), method="BFGS", options={"gtol": 1e-12})
        ref_kl = float(kl(A[b], loglinear(ref.x, phi[b])))
        assert ours[b] <= ref_kl + 1e-10
        assert np.isfinite(cert[b]) and cert[b] >= 0


def _slsqp_mixture(a, B):
    """The reference: SLSQP on the simplex (the solver the batched fit replaced)."""
    seen = a > 0
    a, B = a[seen] / a.sum(), B[:, seen]
    m = len(B)
    res = minimize(
        lambda w: (-a @ np.log(w @ B), -(B @ (a / (w @ B)))),
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0, 1)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = np.clip(res.x, 0, None)
    return w / w.sum()


@given(seeds, st.integers(1, 10), st.integers(2, 5), st.booleans())
def test_batched_mixture_fit_is_at_least_as_good_as_slsqp(seed, R, m, inside):
    rng = np.random.default_rng(seed)
    N = 10
    comps = rng.dirichlet(np.full(N, 0.5), size=(R, m))
    if inside:  # well specified: the target is a mixture of the components
        A = np.einsum("rm,rmn->rn", rng.dirichlet(np.ones(m), size=R), comps)
    else:
        A = rng.dirichlet(np.full(N, 0.5), size=R)
    w, cert = fit_mixture_many(A, comps)
    assert np.allclose(w.sum(axis=1), 1.0) and (w >= 0).all()
    for r in range(R):
        ref = _slsqp_mixture(A[r], comps[r])
        ours, theirs = float(kl(A[r], w[r] @ comps[r])), float(kl(A[r], ref @ comps[r]))
        assert ours <= theirs + 1e-12
        # the Frank-Wolfe gap bounds the suboptimality: no point of the simplex does better
        assert theirs >= ours - cert[r] - 1e-15
        assert 0 <= cert[r] <= 1e-12


@given(seeds, st.integers(1, 8))
def test_pair_static_gates_match_slsqp_and_certify(seed, B):
    rng = np.random.default_rng(seed)
    prob = instances.make("dirichlet", seed % 10_000, p=2, N=8, noise=0.3)
    P = np.stack(
        [np.stack([rng.multinomial(m, Pk) for Pk in prob.P]) / m for m in rng.integers(5, 500, B)]
    )
    fast = static_minimax_many(P, prob.E)
    for b in range(B):
        emp = DiscreteProblem.from_arrays(P[b], prob.E)
        ref = static_minimax(emp)
        assert fast["value"][b] <= ref["value"] + 1e-12
        bounds = [static_certificate(emp, fast["w"][b], lam)[1] for lam in fast["lams"][b]]
        assert fast["value"][b] - max(bounds) <= 1e-6  # a certified answer


def test_static_solves_agree_with_static_solve_on_barrier_instances():
    probs = [instances.make("disjoint", s, p=2, N=6, leak=0.1 * (s % 4)) for s in range(12)]
    for pr, st_ in zip(probs, barrier.static_solves(probs), strict=True):
        ref = static_solve(pr)
        assert st_["duality_gap"] <= 1e-6
        assert st_["value"] <= ref["value"] + 1e-12
        assert st_["value"] >= ref["value"] - ref["duality_gap"] - 1e-12


@given(seeds, st.integers(2, 5), st.integers(1, 4))
def test_hausdorff_closed_form_equals_the_lp(seed, p, m):
    """d_H(conv V, simplex) = max_k 2 (1 - max_i V[i, k]) against one LP per vertex e_k."""
    rng = np.random.default_rng(seed)
    V = rng.dirichlet(np.full(p, 0.7), size=m)
    worst = 0.0
    for k in range(p):
        e = np.eye(p)[k]
        res = linprog(
            np.r_[np.zeros(m), np.ones(p)],
            A_ub=np.block([[-V.T, -np.eye(p)], [V.T, -np.eye(p)]]),
            b_ub=np.r_[-e, e],
            A_eq=np.r_[np.ones(m), np.zeros(p)][None, :],
            b_eq=[1.0],
            bounds=(0, None),
            method="highs",
        )
        worst = max(worst, float(res.fun))
    assert prior.hausdorff_to_simplex(V) == pytest.approx(worst, abs=1e-9)


def test_hausdorff_of_a_shrunk_simplex_is_pinned():
    c = np.array([0.2, 0.3, 0.5])
    # 2 t (1 - min_k c_k)
    assert prior.hausdorff_to_simplex(prior.shrunk_simplex(3, c, 0.1)) == pytest.approx(0.16)
    assert prior.hausdorff_to_simplex(np.eye(4)) == 0.0


@given(st.lists(mst.problems(min_p=2, max_p=2, min_N=6, max_N=6), min_size=1, max_size=6))
def test_fixed_gates_equal_solve_fixed(probs):
    rng = np.random.default_rng(len(probs))
    lams = rng.dirichlet(np.ones(2), size=len(probs))
    lams[0] = [1.0, 0.0]
    P, E = np.stack([pr.P for pr in probs]), np.stack([pr.E for pr in probs])
    value, gap = fixed_gates(P, E, lams)
    for pr, lam, v, g in zip(probs, lams, value, gap, strict=True):
        ref = solve_fixed(pr, lam, support="union")
        assert abs(g) <= 1e-9 + 1e-9 * abs(v)
        assert v == pytest.approx(ref.value, abs=1e-9 + abs(g) + abs(ref.duality_gap))


@given(mst.problems(min_p=2, max_p=3, min_N=3, max_N=6), seeds, st.sampled_from(prior.SHRINK))
def test_linearised_values_match_the_one_problem_solver(prob, seed, t):
    """W(Lambda) of the batched Newton equals SLSQP's within their certificates, with a
    certificate at least as good (the reference: `prior.value_linearised`)."""
    c = np.random.default_rng(seed).dirichlet(np.ones(prob.p))
    V = prior.shrunk_simplex(prob.p, c, t)
    W, cert = linearised_values(prob.P[None], prob.E[None], V[None])
    ref, ref_cert = prior.value_linearised(prob, V)
    if np.isfinite(cert[0]):  # else the check falls back to the reference itself
        assert cert[0] <= 1e-9 + 1e-9 * abs(W[0])
        assert W[0] == pytest.approx(ref, abs=cert[0] + ref_cert + 1e-12)


@given(seeds, st.sampled_from([25, 400]))
def test_cell_sample_reproduces_lone_trials(seed, m):
    """Trials measured together equal the same trials measured one by one (same generators)."""
    prob = instances.make("dirichlet", seed % 10_000, **thm9.SIZES)
    best = {"tabular": 0.0, "static": 0.0}
    rngs = [np.random.default_rng([seed, t]) for t in range(5)]
    cell = thm9.grade_cell(thm9.sample_cell(prob, m, rngs, best, fitted=2))
    for t in range(5):
        lone = thm9.trial(prob, m, np.random.default_rng([seed, t]), best if t < 2 else None)
        for name in ("tabular", "finite"):
            assert cell[name]["margin"][t] == pytest.approx(lone[name]["margin"], abs=1e-12)
            assert cell[name]["rad"][t] == pytest.approx(lone[name]["rad"], abs=1e-12)
        if t < 2:
            for name in ("tabular", "static"):
                got, want = cell["fitted"][name], lone["fitted"][name]
                assert got["excess"][t] == pytest.approx(want["excess"], abs=1e-12)
                assert got["margin"][t] == pytest.approx(want["margin"], abs=1e-12)


@given(seeds, st.integers(3, 4), st.integers(4, 12), st.sampled_from([0.0, 0.1, 0.4]))
def test_interior_point_static_gates_match_slsqp_and_certify(seed, p, N, leak):
    from modgen_bench.divergences import sigma_weights

    probs = [instances.make("disjoint", seed + s, p=p, N=N, leak=leak) for s in range(4)]
    P, E = np.stack([pr.P for pr in probs]), np.stack([pr.E for pr in probs])
    w0 = np.stack([sigma_weights(kl(pr.P, pr.E)) for pr in probs])
    fast = static_minimax_ipm(P, E, w0)
    for b, pr in enumerate(probs):
        primal, bound = max(
            (static_certificate(pr, fast["w"][b], lam) for lam in fast["lams"][b]),
            key=lambda c: c[1],
        )
        assert primal <= static_minimax(pr)["value"] + 1e-12
        assert primal - bound <= 1e-9
