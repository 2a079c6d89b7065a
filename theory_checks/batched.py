"""Divergences of many (problem, lam) pairs at once, for the vectorised searches of the checks.

Problems of one p are stacked with zero padding to a common N (`Stack`): a padded outcome has
P = E = 0, so it adds 0 log 0 = 0 to every KL and entropy below and lies outside both support
masks. Each function takes ``rows`` (m,) indices into the stack and ``lams`` (m, p) and returns
(m,) values, the formulas of `modgen_bench.divergences` row by row (PAPER.md sections 1-3).
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr, rel_entr, xlogy

__all__ = ["Stack", "mix", "kl_rows", "jsd_many", "logsumexp_rows", "overlap_gain_many"]


class Stack:
    """B problems of one p, zero-padded to N = max N: P, E (B, p, N); eps = KL(P[k] || E[k])
    and H(P[k]) (B, p); ``mask`` (B, N): X0 = union_k supp P[k] (the `domains` support)."""

    def __init__(self, problems):
        problems = list(problems)
        B, p = len(problems), problems[0].p
        N = max(pr.N for pr in problems)
        self.P, self.E = np.zeros((B, p, N)), np.zeros((B, p, N))
        for b, pr in enumerate(problems):
            self.P[b, :, : pr.N], self.E[b, :, : pr.N] = pr.P, pr.E
        self.eps = np.sum(rel_entr(self.P, self.E), axis=-1)
        self.h = np.sum(entr(self.P), axis=-1)
        self.mask = np.any(self.P > 0, axis=1)

    def pad(self, vectors) -> np.ndarray:
        """(B, N) array of per-problem (N_b,) vectors (e.g. models), zero-padded."""
        out = np.zeros(self.mask.shape)
        for b, v in enumerate(vectors):
            out[b, : len(v)] = v
        return out


def mix(lams, A) -> np.ndarray:
    """sum_k lams[i, k] A[i, k] for every row i: (m, p), (m, p, N) -> (m, N) (P_lam, E_lam)."""
    return np.einsum("mk,mkn->mn", lams, A)


def kl_rows(P, Q) -> np.ndarray:
    """KL(P[i] || Q[i]) per row, inf where P > 0 = Q: (m, N), (m, N) -> (m,)."""
    return np.sum(rel_entr(P, Q), axis=-1)


def jsd_many(st: Stack, rows, lams) -> np.ndarray:
    """JSD_lam = H(P_lam) - sum_k lam[k] H(P[k]) (PAPER.md section 2) per row: (m,)."""
    return np.sum(entr(mix(lams, st.P[rows])), axis=-1) - np.sum(lams * st.h[rows], axis=-1)


def logsumexp_rows(a) -> np.ndarray:
    """log sum_k exp(a[..., k]) over the last axis; -inf where every entry is -inf."""
    m = np.max(a, axis=-1)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(a - safe[..., None]), axis=-1))


def overlap_gain_many(st: Stack, lam, sigma) -> np.ndarray:
    """Thm 3's overlap gain H_sigma(lam) = sum_k lam[k] E_{x~P[k]}[-log r_k(x)], r_k = sigma[k]
    E[k] / pi_sigma, for every problem of the stack (as `divergences.overlap_gain`; inf where
    P[k](x) > 0 = E[k](x)). lam, sigma: (B, p) -> (B,)."""
    with np.errstate(divide="ignore"):
        log_joint = np.log(sigma)[:, :, None] + np.log(st.E)  # (B, p, N)
    log_pi = logsumexp_rows(np.swapaxes(log_joint, 1, 2))[:, None, :]  # (B, 1, N)
    with np.errstate(invalid="ignore"):
        r = np.exp(np.where(np.isfinite(log_pi), log_joint - log_pi, -np.inf))
    per_domain = -np.sum(xlogy(st.P, r), axis=-1)  # (B, p)
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(lam > 0, lam * per_domain, 0.0), axis=-1)
