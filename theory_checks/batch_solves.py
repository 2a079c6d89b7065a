"""Exact solves the checks need thousands of, vectorised over a stack of problems of one shape.

Both reuse the batched water level and projected Newton of `modgen_bench.exact.stacked` (the
engine of `solve_batch`) and grade every answer with the exact core's certificate; a problem the
batch does not cover (`stacked._eligible`) or does not certify is solved by the one-problem
routine, so every answer is certified exactly as before.

- `fixed_gates`: the best gate in G1 for one fixed mixture per problem (`exact.solve_fixed`):
  q = clip(t P_lam, lo, hi) with sum q = 1, value KL(P_lam || q), certificate
  sum_k lam[k] KL(P[k] || q) - D(lam) (PAPER.md section 2).
- `linearised_values`: W(Lambda) = min_q max_{lam in Lambda} sum_k lam[k] KL(P[k] || q) for
  Lambda = conv(rows of V). With mu the weights of the vertices, sum_k (V^T mu)_k KL(P[k] || q) =
  sum_v mu_v (KL(P_v || q) + JSD_v) where P_v = V[v] @ P: the exact core's minimax over the
  "domains" P_v with the constant JSD_v added to domain v. In the stack that constant is the
  per-domain term -H(P[k]) replaced by V @ -H(P), so its Newton ascent maximises
  D(V^T mu) over mu, and its certificate max_v (V KL(q))_v - D(V^T mu) is the one
  `prior.value_linearised` computes.
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import kl
from modgen_bench.exact import RTOL, TOL, certified, solve_fixed
from modgen_bench.exact.stacked import (
    _eligible,
    _graded,
    _neg_entropy,
    _newton_batch,
    _Stack,
    _stacked_arrays,
)
from modgen_bench.problem import DiscreteProblem
from modgen_bench.threads import blas_threads

__all__ = ["fixed_gates", "linearised_values"]


def fixed_gates(P, E, lam, support: str = "union") -> tuple[np.ndarray, np.ndarray]:
    """(value KL(P_lam || q), duality gap) of `exact.solve_fixed` for every problem of the stack
    P, E (B, p, N) at its lam (B, p); rows the batch does not certify are solved one by one."""
    P, E, lam = (np.asarray(x, dtype=np.float64) for x in (P, E, lam))
    B = len(P)
    value, gap = np.full(B, np.nan), np.full(B, np.nan)
    stk = _stacked_arrays(P, E)
    el = _eligible(stk, support)
    rows = np.flatnonzero(el.ok)
    if len(rows):
        st = _Stack(P[rows], el.lo[rows], el.hi[rows], el.seen[rows], stk.neg_entropy[rows])
        a = np.einsum("bk,bkn->bn", lam[rows], st.P)
        with blas_threads(1), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q, t, _ = st.level(a, np.ones(len(rows)))
            g, D = st.grade(lam[rows], a, q, t)
            # a sum above 1 is graded as the exact core does: + log(sum q) per domain
            g = g + np.maximum(np.log(q.sum(axis=1)), 0.0)[:, None]
            value[rows] = kl(a, q)
            gap[rows] = np.einsum("bk,bk->b", lam[rows], g) - D
    for b in range(B):
        if not certified(value[b], gap[b], TOL, RTOL):
            sol = solve_fixed(DiscreteProblem.from_arrays(P[b], E[b]), lam[b], support=support)
            value[b], gap[b] = sol.value, sol.duality_gap
    return value, gap


def linearised_values(P, E, V, support: str = "union") -> tuple[np.ndarray, np.ndarray]:
    """(W(conv V), certificate) for every problem of the stack P, E (B, p, N) and vertex set
    V (B, p, p) (rows on the simplex); NaN where the batch does not certify (the caller solves
    those one by one)."""
    P, E, V = (np.asarray(x, dtype=np.float64) for x in (P, E, V))
    B = len(P)
    P_v = np.einsum("bvk,bkn->bvn", V, P)
    W, cert = np.full(B, np.nan), np.full(B, np.nan)
    # -H(P[k]) per domain, mixed by each vertex: the constant JSD_v rides on domain v
    neg_h = np.einsum("bvk,bk->bv", V, _neg_entropy(P))
    el = _eligible(_stacked_arrays(P_v, E, neg_entropy=neg_h), support)
    rows = np.flatnonzero(el.ok)
    if not len(rows):
        return W, cert
    st = _Stack(P_v[rows], el.lo[rows], el.hi[rows], el.seen[rows], neg_entropy=neg_h[rows])
    with blas_threads(1), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s, _ = _newton_batch(st, lambda v: 0.5 * (TOL + RTOL * np.abs(v)))
        _, value, ok = _graded(s, TOL, RTOL)
    ok &= s.ok
    W[rows[ok]] = value[ok]
    cert[rows[ok]] = value[ok] - s.D[ok]
    return W, cert
