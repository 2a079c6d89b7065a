"""Gates and G1: the exact feasibility criterion (Lemma 1's flaw), gate recovery, conventions."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.gates import (
    envelope,
    evaluate_gate,
    g1_feasibility,
    gate_from_model,
    pi_g,
    support_mask,
)
from modgen_bench.problem import DiscreteProblem
from theory_checks.lemma1 import g1_nonempty_lp

seeds = st.integers(0, 10_000)


@given(seeds, st.integers(1, 4), st.floats(0.0, 0.9), st.sampled_from(["domains", "union"]))
def test_feasibility_criterion_matches_an_lp(seed, p, leak, support):
    rng = np.random.default_rng(seed)
    prob = instances.make("leaking", rng, p=p, N=8, support=4, leak=leak)
    # the LP solver decides feasibility to ~1e-7; compare away from that boundary
    assume(abs(g1_feasibility(prob, support).max_mass - 1.0) > 1e-6 or leak == 0.0)
    assert g1_feasibility(prob, support).feasible == g1_nonempty_lp(
        prob, support
    )  # independent LP oracle


def test_lemma1_counterexample():
    prob = DiscreteProblem.from_arrays([[1.0, 0.0]], [[0.9, 0.1]])
    f = g1_feasibility(prob, "domains")
    assert not f.feasible and abs(f.max_mass - 0.9) < 1e-15
    assert "--support union" in f.reason
    assert g1_feasibility(prob, "union").feasible


@given(seeds, st.integers(1, 5), st.integers(1, 12))
def test_gate_from_model_realises_any_envelope_point(seed, p, N):
    rng = np.random.default_rng(seed)
    E = rng.dirichlet(np.full(N, 0.5), size=p)
    prob = DiscreteProblem.from_arrays(E, E)
    lo, hi = envelope(prob)
    q = lo + rng.uniform(size=N) * (hi - lo)
    g = gate_from_model(q, E)
    assert np.all(g >= 0) and np.allclose(g.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(pi_g(g, E), q, rtol=0, atol=1e-15)


def test_unknown_support_lists_choices():
    prob = instances.make("dirichlet", 0, p=2, N=3)
    with pytest.raises(ValueError, match="choose one of domains, union"):
        support_mask(prob, "everything")


def test_evaluate_gate_normalises_by_Z():
    """KL(P || pi/Z) = KL(P || pi) + log Z for a gate outside G1."""
    prob = instances.make("leaking", 2, p=2, N=6, support=3, leak=0.3)
    gate = np.full((6, 2), 0.5)
    out = evaluate_gate(prob, gate, "domains")
    mask = support_mask(prob, "domains")
    pi = pi_g(gate, prob.E)
    assert abs(out["Z"] - pi[mask].sum()) < 1e-15
    raw = np.array([np.sum(Pk[mask] * np.log(Pk[mask] / pi[mask])) for Pk in prob.P])
    np.testing.assert_allclose(out["per_domain_kl"], raw + np.log(out["Z"]), atol=1e-13)
