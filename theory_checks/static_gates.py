"""The best constant (static) gate, min_w max_k KL(P[k] || w @ E) over the simplex, with the
certificate `modgen_bench.exact.static_certificate` (a lower bound at any mixture lam).

- `static_minimax`: one problem, by SLSQP on the epigraph; its multipliers are the mixture lam.
- `static_minimax_many`: a stack of p = 2 problems, by a bracketing search over t in
  w = (t, 1 - t) (h(t) = max_k KL is convex in t).
- `static_minimax_ipm`: a stack of problems of any p, by a log-barrier interior-point method on
  the epigraph.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from modgen_bench.divergences import entropy, kl, sigma_weights
from modgen_bench.exact import static_certificate
from modgen_bench.problem import DiscreteProblem

__all__ = ["static_minimax", "static_minimax_many", "static_minimax_ipm"]

_SLSQP = {"ftol": 1e-15, "maxiter": 1000}
#: points per bracket-shrinking round of `static_minimax_many`: 255 for a few problems (7 rounds
#: reach 2^-52), fewer as the stack grows, so that a round holds about _GRID_CELLS numbers
_GRID_CELLS = 65536


def _simplex_eq(m: int, extra: int = 0) -> dict:
    return {
        "type": "eq",
        "fun": lambda z: z[:m].sum() - 1.0,
        "jac": lambda z: np.r_[np.ones(m), np.zeros(extra)],
    }


def static_minimax(problem) -> dict:
    """Best constant gate: {w, lam, value, duality_gap}; z = (w, t), minimise t subject to
    t >= KL(P[k] || w @ E) for every k and w on the simplex.

    Started from sigma = softmax(eps) (the barrier's witness). The certificate is the best
    `static_certificate` lower bound over a few mixtures (SLSQP's multipliers, w itself, uniform):
    any lam gives a valid bound."""
    seen = np.any(problem.P > 0, axis=0)
    P, E = problem.P[:, seen], problem.E[:, seen]
    p = problem.p
    neg_H = -entropy(P)
    w0 = sigma_weights(kl(problem.P, problem.E))

    def gaps(z):
        return z[-1] - (neg_H - P @ np.log(z[:p] @ E))

    def gaps_jac(z):
        return np.hstack([(P / (z[:p] @ E)) @ E.T, np.ones((p, 1))])

    res = minimize(
        lambda z: (z[-1], np.r_[np.zeros(p), 1.0]),
        np.r_[w0, kl(P, w0 @ E).max()],
        jac=True,
        method="SLSQP",
        bounds=[(0, 1)] * p + [(None, None)],
        constraints=[_simplex_eq(p, 1), {"type": "ineq", "fun": gaps, "jac": gaps_jac}],
        options=_SLSQP,
    )
    w = np.clip(res.x[:p], 0.0, None)
    w /= w.sum()
    if not kl(P, w @ E).max() <= kl(P, w0 @ E).max():  # SLSQP lost its way (inf, NaN)
        w = w0
    lams = [np.clip(res.multipliers[1 : 1 + p], 0.0, None), w, np.full(p, 1.0 / p)]
    lams = [lam / lam.sum() for lam in lams if lam.sum() > 0]
    certs = [static_certificate(problem, w, lam) for lam in lams]
    best = int(np.nanargmax([bound for _, bound in certs]))
    primal, bound = certs[best]
    return {"w": w, "lam": lams[best], "value": primal, "duality_gap": primal - bound}


def static_minimax_many(P, E) -> dict:
    """Best constant gate for every stack of domains P (B, p, N) over experts E, shared (p, N) or
    per stack (B, p, N):
    {"w": (B, p), "value": (B,), "lams": (B, c, p)} with value = max_k KL(P[b, k] || w @ E) and
    ``lams`` candidate mixtures for the `exact.static_certificate` bound (any lam gives a valid
    one; the caller keeps the best).

    For p = 2 the gate is w = (t, 1 - t) and h(t) = max_k KL(P_k || t E_0 + (1 - t) E_1) is convex
    in t: the sign of the derivative of the larger KL (a subgradient of h) at 15 to 255 points of
    a bracket locates its minimiser between two of them (bisection with many points per round),
    down to the last bit of t, and the end points t = 0, 1 are compared with it. Its mixtures:
    the one balancing the two slopes (lam_0 f_0' + lam_1 f_1' = 0, where the slopes have opposite
    signs: a kink) and the two vertices. Other p: `static_minimax` one
    problem at a time (its lam)."""
    P = np.asarray(P, dtype=np.float64)
    E = np.broadcast_to(np.asarray(E, dtype=np.float64), P.shape)
    if P.shape[1] != 2:
        fits = [
            static_minimax(DiscreteProblem.from_arrays(Pb, Eb)) for Pb, Eb in zip(P, E, strict=True)
        ]
        return {
            "w": np.stack([f["w"] for f in fits]),
            "value": np.array([f["value"] for f in fits]),
            "lams": np.stack([f["lam"] for f in fits])[:, None, :],
        }
    return _pair(P, E)


def _pair(P, E) -> dict:
    """`static_minimax_many` for p = 2: the bracketing search over t in w = (t, 1 - t)."""
    neg_H = -entropy(P)  # (B, 2)
    d = E[:, 0] - E[:, 1]
    seen = P.any(axis=1)
    rows = np.arange(len(P))

    def kls(t):
        """(KL(P_k || pi_t), d/dt of it) at t (B, K): each (B, K, 2)."""
        pi = E[:, 1, None, :] + t[:, :, None] * d[:, None, :]  # (B, K, N)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pi = np.where(seen[:, None, :], np.log(pi), 0.0)
            f = neg_H[:, None, :] - np.einsum("bkn,bjn->bjk", P, log_pi)
            return f, -np.einsum("bkn,bjn->bjk", P, d[:, None, :] / pi)

    # bisection generalised to ``grid`` interior points per round: the bracket [lo, hi] of the
    # minimiser shrinks (grid + 1)-fold per vectorised evaluation
    lo, hi = np.zeros(len(P)), np.ones(len(P))
    grid = int(np.clip(_GRID_CELLS // P[0].size // len(P), 15, 255))
    frac = np.arange(1, grid + 1) / (grid + 1)
    while np.any(hi - lo > 2.0**-53):  # t in [0, 1]: an absolute last bit (not denormals at 0)
        t = lo[:, None] + (hi - lo)[:, None] * frac  # (B, K)
        f, slope = kls(t)
        k = np.argmax(f, axis=2)[..., None]
        up = np.take_along_axis(slope, k, axis=2)[..., 0] > 0  # the larger KL grows with t
        first = np.where(up.any(axis=1), up.argmax(axis=1), grid)  # first point right of it
        new_lo = np.where(first > 0, t[rows, np.maximum(first - 1, 0)], lo)
        new_hi = np.where(first < grid, t[rows, np.minimum(first, grid - 1)], hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break  # the bracket is as tight as floating point allows
        lo, hi = new_lo, new_hi
    cands = np.stack([0.5 * (lo + hi), np.zeros(len(P)), np.ones(len(P))], axis=1)
    f, _ = kls(cands)
    values = f.max(axis=2)
    best = np.argmin(np.where(np.isnan(values), np.inf, values), axis=1)
    t = cands[rows, best]
    _, slope = kls(t[:, None])
    slope = slope[:, 0, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam0 = np.clip(slope[:, 1] / (slope[:, 1] - slope[:, 0]), 0.0, 1.0)
    lam0 = np.where(np.isfinite(lam0), lam0, 0.5)
    lams = np.stack(
        [
            np.stack([lam0, 1 - lam0], axis=1),
            np.tile([1.0, 0.0], (len(P), 1)),
            np.tile([0.0, 1.0], (len(P), 1)),
        ],
        axis=1,
    )
    return {"w": np.stack([t, 1 - t], axis=1), "value": values[rows, best], "lams": lams}


class _Epigraph:
    """The barrier of the static minimax's epigraph for a stack P, E (B, p, N):
    Phi(w, t) = t - mu sum_k log(t - f_k(w)) - mu sum_j log w_j, f_k(w) = KL(P_k || w @ E)."""

    def __init__(self, P, E):
        self.P, self.E = P, E
        self.neg_H = -entropy(P)
        self.seen = P > 0

    def kl(self, w) -> np.ndarray:
        pi = np.einsum("bj,bjn->bn", w, self.E)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pi = np.where(self.seen, np.log(pi)[:, None, :], 0.0)
        return self.neg_H - np.einsum("bkn,bkn->bk", self.P, log_pi)

    def kkt_lam(self, w) -> np.ndarray:
        """lam solving sum_k lam_k grad f_k(w) + nu 1 = 0, sum lam = 1 (stationarity at an
        interior w): the dual point without the cancellation in mu / (t - f_k) at small mu."""
        B, p, _ = self.P.shape
        pi = np.einsum("bj,bjn->bn", w, self.E)
        R = np.where(self.seen, self.P / pi[:, None, :], 0.0)
        K = np.ones((B, p + 1, p + 1))
        K[:, :p, :p] = -np.einsum("bkn,bjn->bjk", R, self.E)
        K[:, p, p] = 0.0
        rhs = np.zeros((B, p + 1))
        rhs[:, p] = 1.0
        try:
            return np.linalg.solve(K, rhs[..., None])[:, :p, 0]
        except np.linalg.LinAlgError:
            return np.full((B, p), np.nan)

    def phi(self, w, t, mu) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = t[:, None] - self.kl(w)
            val = t - mu * np.log(s).sum(axis=1) - mu * np.log(w).sum(axis=1)
        return np.where((s > 0).all(axis=1) & (w > 0).all(axis=1), val, np.inf)

    def newton(self, w, t, mu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dw, dt, decrement^2) of the equality-constrained Newton step (sum dw = 0)."""
        B, p, _ = self.P.shape
        pi = np.einsum("bj,bjn->bn", w, self.E)
        R = np.where(self.seen, self.P / pi[:, None, :], 0.0)
        J = -np.einsum("bkn,bjn->bkj", R, self.E)  # d f_k / d w_j
        s = t[:, None] - self.kl(w)
        inv, inv2 = 1.0 / s, 1.0 / s**2
        Hf = np.einsum("bkn,bjn,bln->bjl", (R / pi[:, None, :]) * inv[:, :, None], self.E, self.E)
        K = np.zeros((B, p + 2, p + 2))
        K[:, :p, :p] = mu * (Hf + np.einsum("bk,bkj,bkl->bjl", inv2, J, J))
        K[:, :p, :p] += mu * np.einsum("bj,jl->bjl", 1.0 / w**2, np.eye(p))
        K[:, :p, p] = K[:, p, :p] = -mu * np.einsum("bk,bkj->bj", inv2, J)
        K[:, p, p] = mu * inv2.sum(axis=1)
        K[:, :p, p + 1] = K[:, p + 1, :p] = 1.0
        g = np.concatenate(
            [mu * np.einsum("bk,bkj->bj", inv, J) - mu / w, (1.0 - mu * inv.sum(axis=1))[:, None]],
            axis=1,
        )
        rhs = np.concatenate([-g, np.zeros((B, 1))], axis=1)
        try:
            dx = np.linalg.solve(K, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            dx = np.full((B, p + 2), np.nan)
        return dx[:, :p], dx[:, p], -np.einsum("bi,bi->b", g, dx[:, : p + 1])


def static_minimax_ipm(P, E, w0) -> dict:
    """Best constant gate for every stack P, E (B, p, N) by a log-barrier interior-point method on
    the epigraph min t s.t. KL(P_k || w @ E) <= t, w on the simplex (Boyd & Vandenberghe 11.3):
    damped Newton (fraction-to-boundary 0.99, Armijo) from w0 (> 0) for mu = 1e-1, 1e-2, ...,
    1e-13. Returns {"w": (B, p), "lams": (B, 2, p)}: two dual points for the
    `exact.static_certificate` bound, the central path's (lam_k proportional to mu / (t - KL_k))
    and the stationarity solution of `_Epigraph.kkt_lam`."""
    P, E = np.asarray(P, dtype=np.float64), np.asarray(E, dtype=np.float64)
    epi = _Epigraph(P, E)
    w = np.asarray(w0, dtype=np.float64).copy()
    t = epi.kl(w).max(axis=1) + 1.0
    for mu in 10.0 ** -np.arange(1, 14):
        for _ in range(50):
            dw, dt, dec = epi.newton(w, t, mu)
            live = np.isfinite(dec) & (dec > 1e-14)
            if not live.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.where(dw < 0, -w / dw, np.inf).min(axis=1)
            step = np.where(live, np.minimum(1.0, 0.99 * room), 0.0)
            f0 = epi.phi(w, t, mu)
            for _ in range(40):
                f1 = epi.phi(w + step[:, None] * dw, t + step * dt, mu)
                bad = live & ~(f1 <= f0 - 1e-4 * step * dec)
                if not bad.any():
                    break
                step = np.where(bad, 0.5 * step, step)
            step = np.where(live & (f1 <= f0), step, 0.0)
            w, t = w + step[:, None] * dw, t + step * dt
    w = w / w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        path = 1.0 / (t[:, None] - epi.kl(w))
    return {"w": w, "lams": np.stack([_simplex_rows(path), _simplex_rows(epi.kkt_lam(w))], axis=1)}


def _simplex_rows(lam) -> np.ndarray:
    """Rows clipped at 0 and normalised; uniform where nothing positive and finite is left."""
    lam = np.where(np.isfinite(lam) & (lam > 0), lam, 0.0)
    lam = np.where(lam.sum(axis=1, keepdims=True) > 0, lam, 1.0)
    return lam / lam.sum(axis=1, keepdims=True)
