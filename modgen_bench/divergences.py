"""Divergences on finite spaces, in nats, stable at zeros (0 log 0 = 0; KL = inf where P > 0 = Q).

All functions reduce over the last axis and broadcast over the others, so ``kl(P, q)`` with P of
shape (p, N) and q of shape (N,) returns the p per-domain divergences. Built on
`scipy.special.rel_entr`, `entr` and `xlogy` (PAPER.md sections 1-3).
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr, logsumexp, rel_entr, softmax, xlogy

__all__ = [
    "kl",
    "entropy",
    "cross_entropy",
    "mixture",
    "jsd",
    "overlap_gain",
    "sigma_weights",
    "static_barrier",
]


def kl(P, Q) -> np.ndarray:
    """KL(P || Q) = sum_x P(x) log(P(x) / Q(x)); inf where P(x) > 0 = Q(x).

    Q need not be normalised (the paper's pi_g for a gate outside G1 is not).
    """
    return np.sum(rel_entr(P, Q), axis=-1)


def entropy(P) -> np.ndarray:
    """H(P) = -sum_x P(x) log P(x)."""
    return np.sum(entr(P), axis=-1)


def cross_entropy(P, Q) -> np.ndarray:
    """CE(P, Q) = -sum_x P(x) log Q(x) = H(P) + KL(P || Q); inf where P(x) > 0 = Q(x)."""
    return -np.sum(xlogy(P, Q), axis=-1)


def mixture(lam, P) -> np.ndarray:
    """P_lam = sum_k lam[k] P[k]  (PAPER.md section 1). lam: (p,), P: (p, N) -> (N,)."""
    return np.asarray(lam, dtype=np.float64) @ np.asarray(P, dtype=np.float64)


def jsd(lam, P) -> float:
    """Weighted Jensen-Shannon divergence JSD_lam = sum_k lam[k] KL(P[k] || P_lam).

    Computed as H(P_lam) - sum_k lam[k] H(P[k]) (PAPER.md section 2); 0 <= JSD_lam <= H(lam).
    """
    lam = np.asarray(lam, dtype=np.float64)
    return float(entropy(mixture(lam, P)) - lam @ entropy(P))


def sigma_weights(eps) -> np.ndarray:
    """sigma = softmax(eps), the static gate attaining the barrier (PAPER.md section 3)."""
    return softmax(np.asarray(eps, dtype=np.float64))


def static_barrier(eps) -> float:
    """log sum_k exp(eps[k]): the static-gate barrier and Thm 3's constant (PAPER.md section 3)."""
    return float(logsumexp(np.asarray(eps, dtype=np.float64)))


def overlap_gain(lam, P, E, sigma) -> float:
    """Overlap gain of Thm 3: H_sigma(lam) = sum_k lam[k] E_{x~P[k]}[-log r_k(x)].

    r_k(x) = sigma[k] E[k](x) / pi_sigma(x) is the posterior of expert k under the prior sigma,
    pi_sigma = sum_k sigma[k] E[k] (PAPER.md section 3, Thm 3). Limits: 0 for disjoint experts
    with each P[k] on its expert's support; sum_k lam[k] (-log sigma[k]) for identical experts.
    Inf where P[k](x) > 0 = E[k](x).
    Shapes: lam (p,), P and E (p, N), sigma (p,).
    """
    lam = np.asarray(lam, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_joint = np.log(np.asarray(sigma, dtype=np.float64))[:, None] + np.log(E)  # (p, N)
    log_pi = logsumexp(log_joint, axis=0)  # (N,)
    with np.errstate(invalid="ignore"):
        log_r = np.where(np.isfinite(log_pi), log_joint - log_pi, -np.inf)  # (p, N)
    r = np.exp(log_r)
    per_domain = -np.sum(xlogy(P, r), axis=-1)  # (p,)
    mask = lam > 0
    return float(lam[mask] @ per_domain[mask])
