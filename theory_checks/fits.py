"""KL projections onto the model families the checks need, each with an optimality certificate.

- `fit_mixture`: argmin_w KL(a || w @ B) over the simplex (a mixture family with fixed components
  B; also the best static gate for data weights lam when a = P_lam and B = E), by projected
  Newton (batched: `fit_mixture_many`); the
  certificate is the Frank-Wolfe gap max_j grad_j - grad . w of the concave log-likelihood, an
  upper bound on the suboptimality.
- `static_minimax` (re-exported from `static_gates`): the best static gate.
- `fit_loglinear`: argmin_theta KL(a || q_theta), q_theta(x) = exp(theta . phi(x)) / Z(theta)
  (an exponential family with features phi, N x d), by damped Newton on the convex objective
  log Z(theta) - theta . E_a[phi]. The certificate is the standard estimate
  |grad|^2 / (2 lambda_min(Cov_q phi)) of the suboptimality (the Hessian is Cov_q phi).
"""

from __future__ import annotations

import numpy as np

from modgen_bench.exact.stacked import _qp_steps
from modgen_bench.threads import blas_threads

from .static_gates import static_minimax

__all__ = [
    "fit_mixture",
    "fit_mixture_many",
    "static_minimax",
    "fit_loglinear",
    "fit_loglinear_many",
    "loglinear",
    "softmax_rows",
]


def fit_mixture(a, B) -> tuple[np.ndarray, float]:
    """(w, certificate) for max_w sum_x a(x) log (w @ B)(x) over the simplex; a (N,), B (m, N).
    One row of `fit_mixture_many`."""
    w, cert = fit_mixture_many(np.asarray(a, dtype=np.float64)[None, :], B)
    return w[0], float(cert[0])


def _loglik(A, pi) -> np.ndarray:
    """sum_x a(x) log pi(x) per row, 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(A > 0, A * np.log(pi), 0.0).sum(axis=-1)


def fit_mixture_many(A, B, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(w (R, m), certificates (R,)) of `fit_mixture` for every row of A (R, N), components B
    (m, N) shared or (R, m, N) per row, all at once.

    Projected Newton on the convex F(w) = -sum_x a(x) log (w @ B)(x) over the simplex (a
    normalised): the Newton point minimises the quadratic model of F over the simplex
    (`exact.stacked._qp_steps`, a batched active-set QP), then Armijo backtracking (1e-4, halving)
    along the segment to it. A row stops when its Frank-Wolfe gap
    max_j grad_j - grad . w of the log-likelihood (an upper bound on its suboptimality, the
    certificate) is at most 1e-14 (a few rounding units of grad . w = 1)."""
    A = np.asarray(A, dtype=np.float64)
    A = A / A.sum(axis=1, keepdims=True)
    R = len(A)
    B = np.broadcast_to(np.asarray(B, dtype=np.float64), (R, *np.shape(B)[-2:]))
    m = B.shape[1]
    w = np.full((R, m), 1.0 / m)
    cert = np.full(R, np.inf)
    live = np.arange(R)
    for _ in range(max_iter):
        a, comp, wl = A[live], B[live], w[live]
        pi = np.einsum("rm,rmn->rn", wl, comp)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(a > 0, a / pi, 0.0)
        grad = np.einsum("rmn,rn->rm", comp, ratio)  # of the log-likelihood
        # max_j grad_j >= grad . w on the simplex: a negative gap is rounding
        cert[live] = np.maximum(grad.max(axis=1) - np.einsum("rm,rm->r", grad, wl), 0.0)
        go = cert[live] > 1e-14
        live, a, comp, wl, grad, pi, ratio = (x[go] for x in (live, a, comp, wl, grad, pi, ratio))
        if not len(live):
            break
        H = np.einsum("rjn,rn,rkn->rjk", comp, ratio / pi, comp)
        H += 1e-12 * np.maximum(1.0, np.einsum("rii->ri", H))[:, :, None] * np.eye(m)
        with blas_threads(1):
            y = _qp_steps(H, np.einsum("rjk,rk->rj", H, wl) + grad, wl)
        d = y - wl
        f0, slope = -_loglik(a, pi), -np.einsum("rm,rm->r", grad, d)
        step, rows = np.ones(len(live)), np.arange(len(live))
        while len(rows):
            trial = np.einsum("rm,rmn->rn", wl[rows] + step[rows, None] * d[rows], comp[rows])
            f = -_loglik(a[rows], trial)
            bad = f > f0[rows] + 1e-4 * step[rows] * slope[rows]
            # near the optimum the decrease is below F's rounding: a full step that does not
            # raise F beyond rounding is taken (the certificate, not F, then keeps improving)
            bad &= ~((step[rows] == 1.0) & (f <= f0[rows] + 1e-14 * (1.0 + np.abs(f0[rows]))))
            rows = rows[bad & (step[rows] > 1e-10)]
            step[rows] *= 0.5
        w[live] = np.maximum(wl + step[:, None] * d, 0.0)
        w[live] /= w[live].sum(axis=1, keepdims=True)
    return w, cert


def softmax_rows(z) -> np.ndarray:
    """softmax over the last axis in plain numpy (scipy's softmax costs ~10x more on the tiny
    rows the fits evaluate thousands of times)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logsumexp_rows(z) -> np.ndarray:
    top = z.max(axis=-1)
    return top + np.log(np.exp(z - top[..., None]).sum(axis=-1))


def loglinear(theta, phi) -> np.ndarray:
    """q_theta = softmax(phi @ theta): the log-linear model with features phi (N, d); batched,
    theta (B, d) and phi (B, N, d) give (B, N)."""
    theta, phi = np.asarray(theta, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    if theta.ndim == 1:
        return softmax_rows(phi @ theta)
    return softmax_rows(
        np.einsum("bnd,bd->bn", np.broadcast_to(phi, (len(theta), *phi.shape[-2:])), theta)
    )


def fit_loglinear(a, phi, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """(theta, certificate) for argmin_theta KL(a || q_theta); a: (N,), phi: (N, d).
    One row of `fit_loglinear_many`."""
    theta, cert = fit_loglinear_many(np.asarray(a, dtype=np.float64)[None, :], phi, max_iter)
    return theta[0], float(cert[0])


def fit_loglinear_many(A, phi, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(theta (B, d), certificates (B,)) for argmin_theta KL(A[b] || q_theta), every row at once;
    A: (B, N), phi: (N, d) shared or (B, N, d) per row.

    Damped Newton on f(theta) = log Z(theta) - theta . E_a[phi] (gradient E_q[phi] - E_a[phi],
    Hessian Cov_q phi), each row stopped when its certificate |grad|^2 / (2 lambda_min) is below
    1e-14; Armijo backtracking (1e-4, halving, down to a step of 1e-10) row by row."""
    A = np.asarray(A, dtype=np.float64)
    B = len(A)
    phi = np.broadcast_to(np.asarray(phi, dtype=np.float64), (B, *np.shape(phi)[-2:]))
    target = np.einsum("bn,bnd->bd", A, phi)  # E_a[phi]
    theta = np.zeros((B, phi.shape[2]))
    cert = np.full(B, np.inf)
    live = np.arange(B)
    for _ in range(max_iter):
        ph, th, tg = phi[live], theta[live], target[live]
        q = loglinear(th, ph)
        mean = np.einsum("bn,bnd->bd", q, ph)
        grad = mean - tg
        centred = ph - mean[:, None, :]
        cov = np.einsum("bn,bnd,bne->bde", q, centred, centred)
        lam_min = np.linalg.eigvalsh(cov)[:, 0]
        cert[live] = np.einsum("bd,bd->b", grad, grad) / (2 * np.maximum(lam_min, 1e-300))
        go = cert[live] > 1e-14
        live, ph, th, tg, grad, cov = (x[go] for x in (live, ph, th, tg, grad, cov))
        if not len(live):
            break
        step = -np.linalg.solve(cov + 1e-12 * np.eye(cov.shape[1]), grad[..., None])[..., 0]
        theta[live] = th + _armijo(ph, th, tg, grad, step)[:, None] * step
    return theta, cert


def _armijo(phi, theta, target, grad, step) -> np.ndarray:
    """Per row, the first t in 1, 1/2, ... with f(theta + t step) <= f(theta) + 1e-4 t grad . step
    (or t <= 1e-10), f = log Z - theta . target."""

    def f(th, rows):
        z = np.einsum("bnd,bd->bn", phi[rows], th)
        return _logsumexp_rows(z) - np.einsum("bd,bd->b", th, target[rows])

    rows = np.arange(len(theta))
    f0 = f(theta, rows)
    slope = np.einsum("bd,bd->b", grad, step)
    t = np.ones(len(theta))
    while len(rows):
        trial = f(theta[rows] + t[rows, None] * step[rows], rows)
        rows = rows[(trial > f0[rows] + 1e-4 * t[rows] * slope[rows]) & (t[rows] > 1e-10)]
        t[rows] *= 0.5
    return t
