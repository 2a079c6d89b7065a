"""Divergences: closed forms, zeros, and the identities of PAPER.md section 2 as properties."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.divergences import (
    cross_entropy,
    entropy,
    jsd,
    kl,
    mixture,
    overlap_gain,
    sigma_weights,
    static_barrier,
)

seeds = st.integers(0, 10_000)


def _brute_kl(P, Q):
    return sum(p * np.log(p / q) for p, q in zip(P, Q, strict=True) if p > 0)


def test_kl_closed_forms_and_zeros():
    assert abs(kl([0.5, 0.5], [0.25, 0.75]) - 0.5 * np.log(2) - 0.5 * np.log(2 / 3)) <= 1e-16
    assert kl([1.0, 0.0], [0.5, 0.5]) == np.log(2)
    assert kl([0.0, 1.0], [1.0, 0.0]) == np.inf  # P > 0 = Q
    assert kl([0.0, 1.0], [0.5, 0.0]) == np.inf
    assert kl([1.0, 0.0], [1.0, 0.0]) == 0.0  # 0 log 0 = 0
    assert entropy([0.5, 0.5, 0.0]) == np.log(2)
    assert cross_entropy([1.0, 0.0], [0.25, 0.0]) == -np.log(0.25)


@given(seeds, st.integers(2, 5), st.integers(2, 12))
def test_jsd_identity_and_bounds(seed, p, N):
    """sum_k lam_k KL(P_k||pi) = KL(P_lam||pi) + JSD_lam, and 0 <= JSD_lam <= H(lam)."""
    rng = np.random.default_rng(seed)
    prob = instances.make("dirichlet", rng, p=p, N=N, alpha=0.5)
    lam = rng.dirichlet(np.ones(p))
    pi = rng.dirichlet(np.ones(N))
    lhs = lam @ kl(prob.P, pi)
    rhs = kl(mixture(lam, prob.P), pi) + jsd(lam, prob.P)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))
    j = jsd(lam, prob.P)
    assert -1e-12 <= j <= entropy(lam) + 1e-12
    # JSD as its definition, brute force
    Plam = mixture(lam, prob.P)
    assert abs(j - sum(w * _brute_kl(Pk, Plam) for w, Pk in zip(lam, prob.P, strict=True))) <= 1e-12


def test_jsd_of_disjoint_domains_is_entropy_of_lam():
    prob = instances.make("disjoint", 0, p=3, N=9)
    lam = np.array([0.2, 0.3, 0.5])
    assert abs(jsd(lam, prob.P) - entropy(lam)) <= 1e-14


def test_overlap_gain_limits():
    """Disjoint experts: 0. Identical experts: sum_k lam_k (-log sigma_k) (PAPER.md section 3)."""
    prob = instances.make("disjoint", 1, p=3, N=9)
    eps = kl(prob.P, prob.E)
    sigma = sigma_weights(eps)
    lam = np.array([0.5, 0.25, 0.25])
    assert overlap_gain(lam, prob.P, prob.E, sigma) == 0.0
    E = np.repeat(np.random.default_rng(0).dirichlet(np.ones(9))[None, :], 3, axis=0)
    expected = lam @ -np.log(sigma)
    assert abs(overlap_gain(lam, prob.P, E, sigma) - expected) <= 1e-12
    assert abs(static_barrier(eps) - np.log(np.sum(np.exp(eps)))) <= 1e-12
