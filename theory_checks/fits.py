"""KL projections onto the model families the checks need, each with an optimality certificate.

- `fit_mixture`: argmin_w KL(a || w @ B) over the simplex (a mixture family with fixed components
  B; also the best static gate for data weights lam when a = P_lam and B = E), by SLSQP; the
  certificate is the Frank-Wolfe gap max_j grad_j - grad . w of the concave log-likelihood, an
  upper bound on the suboptimality.
- `static_minimax`: min_w max_k KL(P[k] || w @ E) (the best static gate), by SLSQP on the
  epigraph; its multipliers are the mixture lam, and the certificate is
  `modgen_bench.exact.static_certificate` at (w, lam).
- `fit_loglinear`: argmin_theta KL(a || q_theta), q_theta(x) = exp(theta . phi(x)) / Z(theta)
  (an exponential family with features phi, N x d), by damped Newton on the convex objective
  log Z(theta) - theta . E_a[phi]. The certificate is the standard estimate
  |grad|^2 / (2 lambda_min(Cov_q phi)) of the suboptimality (the Hessian is Cov_q phi).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from modgen_bench.divergences import entropy, kl, sigma_weights
from modgen_bench.exact import static_certificate

__all__ = ["fit_mixture", "static_minimax", "fit_loglinear", "loglinear"]

_SLSQP = {"ftol": 1e-15, "maxiter": 1000}


def _simplex_eq(m: int, extra: int = 0) -> dict:
    return {
        "type": "eq",
        "fun": lambda z: z[:m].sum() - 1.0,
        "jac": lambda z: np.r_[np.ones(m), np.zeros(extra)],
    }


def fit_mixture(a, B) -> tuple[np.ndarray, float]:
    """(w, certificate) for max_w sum_x a(x) log (w @ B)(x) over the simplex; a (N,), B (m, N)."""
    a = np.asarray(a, dtype=np.float64)
    seen = a > 0
    a, B = a[seen] / a.sum(), np.asarray(B, dtype=np.float64)[:, seen]
    m = B.shape[0]

    def f(w):
        pi = w @ B
        return -a @ np.log(pi), -(B @ (a / pi))

    res = minimize(
        f,
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0, 1)] * m,
        constraints=[_simplex_eq(m)],
        options=_SLSQP,
    )
    w = np.clip(res.x, 0.0, None)
    w /= w.sum()
    grad = B @ (a / (w @ B))
    return w, float(grad.max() - grad @ w)


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


def loglinear(theta, phi) -> np.ndarray:
    """q_theta = softmax(phi @ theta): the log-linear model with features phi (N, d)."""
    return softmax(phi @ theta)


def fit_loglinear(a, phi, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """(theta, certificate) for argmin_theta KL(a || q_theta); a: (N,), phi: (N, d).

    Damped Newton on f(theta) = log Z(theta) - theta . E_a[phi] (gradient E_q[phi] - E_a[phi],
    Hessian Cov_q phi), stopped when the certificate |grad|^2 / (2 lambda_min) is below 1e-14.
    """
    a = np.asarray(a, dtype=np.float64)
    target = a @ phi  # E_a[phi], (d,)

    def f(theta):
        return logsumexp(phi @ theta) - theta @ target

    theta = np.zeros(phi.shape[1])
    cert = np.inf
    for _ in range(max_iter):
        q = loglinear(theta, phi)
        grad = q @ phi - target
        centred = phi - q @ phi
        cov = centred.T @ (q[:, None] * centred)
        evals = np.linalg.eigvalsh(cov)
        cert = float(grad @ grad / (2 * max(evals[0], 1e-300)))
        if cert <= 1e-14:
            break
        step = -np.linalg.solve(cov + 1e-12 * np.eye(len(theta)), grad)
        f0, t = f(theta), 1.0
        while f(theta + t * step) > f0 + 1e-4 * t * (grad @ step) and t > 1e-10:
            t *= 0.5
        theta = theta + t * step
    return theta, cert
