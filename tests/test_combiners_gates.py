"""gate_fixed_best and gate_erm on discrete problems, graded exactly by the exact core
(modgen_bench.combiners.fixed / gates; PAPER.md sections 1-4)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from modgen_bench.algorithms.harness import run_method
from modgen_bench.combiners.fixed import best_fixed_weights, fixed_gate_nll
from modgen_bench.combiners.gates import erm_spd_settings
from modgen_bench.divergences import entropy
from modgen_bench.exact import solve, solve_fixed, solve_static
from modgen_bench.gates import envelope, evaluate_gate, g1_feasibility, support_mask
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing.strategies import problems

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _weighted(problem):
    """Domain k's items: its support's outcomes with weights P_k(x), log E_j(x) (n_k, p)."""
    log_e, w = [], []
    for k in range(problem.p):
        xs = np.flatnonzero(problem.P[k] > 0)
        with np.errstate(divide="ignore"):
            log_e.append(np.log(problem.E[:, xs].T))
        w.append(problem.P[k, xs])
    return log_e, w


@given(problems(min_p=2, max_p=4, max_N=8))
@settings(max_examples=15)
def test_best_fixed_weights_reach_the_exact_best_static_gate(problem):
    """With item weights P_k(x) and offsets H(P_k) the objective is max_k KL(P_k || w E): the
    exact core's best static gate (`solve_static`, certified) gives the same value."""
    log_e, w = _weighted(problem)
    ref = solve_static(problem)
    if ref.status != "optimal" or not np.isfinite(ref.value):
        return
    wv, value = best_fixed_weights(log_e, w, offsets=entropy(problem.P))
    assert wv.min() >= 0 and wv.sum() == pytest.approx(1.0, abs=1e-12)
    assert value == pytest.approx(ref.value, abs=1e-6)
    exact = float(evaluate_gate(problem, np.tile(wv, (problem.N, 1)), "union")["worst_case_kl"])
    assert exact == pytest.approx(value, abs=1e-9)


def test_fixed_gate_is_a_distribution_and_its_nll_matches_the_mixture():
    """sum_j w_j E_j sums to 1 exactly over a finite space (Z = 1), and the NLL is -log of it."""
    rng = np.random.default_rng(0)
    E = rng.dirichlet(np.ones(16), size=3)  # (p, N)
    w = rng.dirichlet(np.ones(3))
    log_e = torch.as_tensor(np.log(E.T))  # (N, p)
    nll = fixed_gate_nll(w, log_e, T=2)  # T - 1 = 1 token
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-12)
    assert nll.numpy() == pytest.approx(-np.log(w @ E))


def _onto_g1(problem, gate, support="domains"):
    """The gate moved on the segment to the extreme one-hot gate (argmin or argmax expert per x)
    until Z = 1 exactly (Z is linear in g): a point of G1, which the minimax value V* bounds."""
    mask = support_mask(problem, support)
    lo, hi = envelope(problem)
    Z = float(((gate * problem.E.T).sum(axis=1) * mask).sum())
    if Z == 1.0:
        return gate
    target = problem.E.argmin(axis=0) if Z > 1 else problem.E.argmax(axis=0)
    z_t = float(((lo if Z > 1 else hi) * mask).sum())
    t = (Z - 1.0) / (Z - z_t)
    g = (1 - t) * gate
    g[np.arange(problem.N), target] += t
    return g


@given(problems(min_p=2, max_p=3, max_N=6))
@settings(max_examples=8)
def test_ml_gate_on_g1_is_never_below_the_minimax_value(problem):
    """The ML gate (SPD, lam frozen at uniform), put on Z = 1 exactly, has worst-case KL >= V*."""
    if not g1_feasibility(problem, "domains").feasible:
        return
    v = solve(problem).value
    run = run_method(
        problem,
        "spd",
        lam_signal="kl",
        steps=150,
        seed=0,
        value=v,
        **{k: val for k, val in erm_spd_settings({}).items()},
    )
    assert np.allclose(run.lam, 1.0 / problem.p)  # lam never moved
    g = _onto_g1(problem, run.gate)
    ev = evaluate_gate(problem, g)
    assert ev["Z"] == pytest.approx(1.0, abs=1e-9)
    assert ev["worst_case_kl"] >= v - 1e-9


def _planted():
    """Three disjoint domains, uniform on 3 outcomes each; experts exact on two, poor on the
    third (the hard domain: eps = KL(uniform || (.98, .01, .01)) = 1.98 nats)."""
    P = np.kron(np.eye(3), np.full(3, 1 / 3))
    E = P.copy()
    E[2, 6:] = [0.98, 0.01, 0.01]
    return DiscreteProblem(P, E, ["a", "b", "hard"])


@pytest.mark.parametrize("z_penalty", [True, False])
def test_ml_gate_is_worse_than_the_spd_gate_on_a_planted_hard_domain(z_penalty):
    """The exact gap the minimax buys here: the best uniform-mixture gate in G1 has worst-case KL
    V* + 0.55; trained gates (both put on Z = 1 exactly) keep at least half of it."""
    problem = _planted()
    v = solve(problem).value
    uniform_best = evaluate_gate(problem, solve_fixed(problem, np.full(3, 1 / 3)).gate)[
        "worst_case_kl"
    ]
    gap = uniform_best - v
    assert gap > 0.5
    spd = run_method(problem, "spd", lam_signal="kl", steps=300, seed=0, value=v)
    erm = run_method(
        problem,
        "spd",
        lam_signal="kl",
        steps=300,
        seed=0,
        value=v,
        **erm_spd_settings({}, z_penalty=z_penalty),
    )
    w_spd = evaluate_gate(problem, _onto_g1(problem, spd.gate))["worst_case_kl"]
    w_erm = evaluate_gate(problem, _onto_g1(problem, erm.gate))["worst_case_kl"]
    assert w_erm >= v - 1e-9 and w_spd >= v - 1e-9
    assert w_erm > w_spd + gap / 2
    assert spd.lam[2] > 0.5 and np.allclose(erm.lam, 1 / 3)  # lam* on the hard domain


@given(problems(min_p=2, max_p=5, max_N=8))
@settings(max_examples=10)
def test_best_fixed_weights_without_a_conic_solver_reach_the_same_value(problem):
    """When every conic solver fails (long windows' badly scaled logs did, on the languages
    quick preset), the epigraph SQP gives the same worst-case value, never an error."""
    from modgen_bench.exact import conic

    log_e, w = _weighted(problem)
    offsets = entropy(problem.P)
    _, ref = best_fixed_weights(log_e, w, offsets=offsets)

    def fail(*_, **__):
        raise conic.ConicFailure("every conic solver failed (test)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conic, "_solve_chain", fail)
        wv, value = best_fixed_weights(log_e, w, offsets=offsets)
    assert wv.min() >= 0 and wv.sum() == pytest.approx(1.0, abs=1e-12)
    if np.isfinite(ref):
        assert value == pytest.approx(ref, abs=1e-6)
