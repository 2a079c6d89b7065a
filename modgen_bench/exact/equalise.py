"""Newton on the equalisation of the active domains, the entropic path's first polish.

At a saddle point every domain with lam*_k > 0 has KL(P[k] || q(lam*)) = V* (complementary
slackness, PAPER.md section 2), and the duality gap of q(lam) against D(lam) is
sum_k lam_k (max_j g_j - g_k), g = KL(P[.] || q(lam)). Near a vertex of the simplex the domains
that fill the outcomes the heavy ones leave empty carry weights of 1e-7 .. 1e-20: D moves by
lam_k times their error, below rounding, so no ascent on D can place them, while their KL moves
by O(1) per unit of log-weight. This polish solves for them from g instead, in log-weights
theta (lam = softmax(theta)), with the Jacobian dg/dtheta = H (diag(lam) - lam lam') (H the
dual Hessian, `InnerProblem.hessian`):

- the domains at the level max g, and those below it that a move of their own log-weight of at
  most REACH nats (one clipped step) brings to it (linearly), are equalised: g_k(theta) = tau,
  one square Newton system, its step damped until the residual shrinks (Armijo on
  |g_E - tau|^2) or the gap at the trial's own lam does, or, where the step clipped to STEP
  nats does neither, Levenberg-Marquardt steps on the same system, the damping raised
  tenfold until the residual shrinks;
- the others whose weight still counts in the gap are pushed down by PUSH nats a step (the
  system sees that push), or set to exactly 0 when that lowers the gap.

The best model and the best bound met certify together, like the other Newton paths.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .budget import Budget
from .newton_result import NewtonResult

__all__ = ["equalise"]

#: nats a step lowers a weight that is out of reach but still counts in the gap
PUSH = 1.0
#: halvings of a Newton step before the polish gives up
HALVINGS = 30
#: largest change of one log-weight in one step (as `waterfill.THETA_STEP`)
STEP = 30.0
#: nats of its own log-weight within which a domain below the level joins the equalisation: one
#: clipped step's reach. A domain of weight 0.49 whose level lies 8 nats away (its KL moves by
#: only 5.6e-7 per nat, the mass it keeps on a shared outcome) must be equalised there, not
#: pushed 1 nat a step: the damped push then stalls at steps of 1e-5 nats.
REACH = STEP
#: Levenberg-Marquardt damping (relative to the largest diagonal entry of J'J): first, least
LM_START, LM_MIN = 1e-8, 1e-12


class _Pt:
    """theta (-inf: weight exactly 0), lam = softmax(theta), q(lam), t, g = KL, D(lam)."""

    def __init__(self, inner, theta: np.ndarray):
        self.theta = theta
        lam = np.exp(theta - theta.max())
        self.lam = lam / lam.sum()
        self.q, self.t = inner.model(self.lam)
        self.g = inner.kl_per_domain(self.q)
        self.D = inner.dual_bound(self.lam, self.q, self.t)

    @property
    def own_gap(self) -> float:
        return float(self.g.max() - self.D)


class _Best:
    """The least primal value (model) and the largest bound met so far."""

    def __init__(self, seed: NewtonResult | None):
        self.primal = (np.inf, None, None) if seed is None else (seed.g.max(), seed.q, seed.g)
        self.bound = (-np.inf, None, 0.0) if seed is None else (seed.bound, seed.lam, seed.t)

    def add(self, pt: _Pt) -> None:
        if self.primal[1] is None or pt.g.max() < self.primal[0]:
            self.primal = (pt.g.max(), pt.q, pt.g)
        if self.bound[1] is None or pt.D > self.bound[0]:
            self.bound = (pt.D, pt.lam, pt.t)

    def gap(self) -> float:
        return float(self.primal[0] - self.bound[0])


class _Step(NamedTuple):
    """A Newton step: ``d`` over theta, the level's change ``dtau``, the equalised domains
    ``idx``, and the linear system J z = -F it solves (z = d on idx, then dtau), for the
    Levenberg-Marquardt fallback; ``push`` the fixed part of d (the pushed-down weights)."""

    d: np.ndarray
    dtau: float
    idx: np.ndarray
    J: np.ndarray
    F: np.ndarray
    push: np.ndarray


def _newton_step(inner, pt: _Pt, tol: float) -> _Step | _Pt | None:
    """The step of one iteration (`_Step`), or the point with the out-of-reach weights set to 0
    when that lowers the gap, or None where the curvature overflowed float64."""
    g, lam, gm = pt.g, pt.lam, float(pt.g.max())
    H = inner.hessian(lam, pt.t)
    G = H * lam[None, :] - np.outer(H @ lam, lam)  # dg / dtheta
    if not np.isfinite(G).all():
        return None
    live = np.isfinite(pt.theta)
    eq = live & ((g >= gm) | (gm - g <= REACH * np.abs(np.diag(G))))
    eq[np.argmax(lam)] = True
    low = live & ~eq
    if (lam[low] * (gm - g[low])).sum() > 0.1 * tol:
        theta = np.where(low, -np.inf, pt.theta)
        out = _Pt(inner, theta)
        if out.own_gap < pt.own_gap:
            return out
    push = np.where(low & (lam * (gm - g) > 1e-3 * tol), -PUSH, 0.0)
    idx = np.flatnonzero(eq)
    m = len(idx)
    J = np.zeros((m + 1, m + 1))
    J[:m, :m], J[:m, m], J[m, :m] = G[np.ix_(idx, idx)], -1.0, lam[idx]
    F = np.append(g[idx] - gm + G[idx] @ push, lam @ push)
    sol = np.linalg.lstsq(J, -F, rcond=None)[0]
    d = push.copy()
    d[idx] = np.clip(sol[:m], -STEP, STEP)
    return _Step(d, float(sol[m]), idx, J, F, push)


def equalise(
    inner,
    lam0,
    tol,
    seed: NewtonResult | None = None,
    budget: Budget | None = None,
    max_iter: int = 200,
) -> NewtonResult:
    """Newton on the equalisation g_k(theta) = tau of the active domains from ``lam0`` (module
    docstring), within ``budget``; ``tol(value)``: the gap at which to stop; ``seed``: a path's
    result whose best model and bound join the ones met here. Returns a `NewtonResult` (the
    best bound's lam and the best model, which certify together)."""
    budget = budget or Budget()
    pt = _Pt(inner, np.log(np.maximum(np.asarray(lam0, dtype=np.float64), 1e-300)))
    best = _Best(seed)
    it, stopped, mu = 0, "iterations", LM_START
    for _ in range(min(max_iter, budget.max_iter)):
        best.add(pt)
        if best.gap() <= tol(best.primal[0]):
            stopped = "converged"
            break
        if budget.expired() or not np.isfinite(pt.g.max()):
            stopped = "time" if budget.expired() else "stalled"
            break
        it += 1
        step = _newton_step(inner, pt, tol(best.primal[0]))
        if isinstance(step, _Pt):
            pt = step
            continue
        nxt = None if step is None else _damped(inner, pt, step, best)
        if nxt is None and step is not None:
            nxt, mu = _levenberg(inner, pt, step, best, mu)
        if nxt is None:
            stopped = "stalled"
            break
        pt = nxt
    _, q, g = best.primal
    bound, lam, t = best.bound
    return NewtonResult(lam, q, t, g, bound, it, stopped)


def _damped(inner, pt: _Pt, step: _Step, best: _Best) -> _Pt | None:
    """The Newton step halved until the residual |g_k - tau| over the equalised domains shrinks
    (Armijo) or the gap of the trial's own lam does; every trial joins ``best``. The gap counts:
    where a light domain fills an outcome the heavy ones leave nearly empty, lowering its weight
    raises the others' KL by ~1 nat a nat, so the full step can raise the residual while it
    shrinks the gap."""
    d, dtau, idx = step.d, step.dtau, step.idx
    gm = float(pt.g.max())
    res0 = pt.g[idx] - gm
    merit0 = float(res0 @ res0)
    s = 1.0
    for _ in range(HALVINGS):
        trial = _Pt(inner, pt.theta + s * d)
        best.add(trial)
        r = trial.g[idx] - (gm + s * dtau)
        if r @ r <= (1.0 - 1e-4 * s) * merit0 or trial.own_gap < pt.own_gap:
            return trial
        s *= 0.5
    return None


def _levenberg(inner, pt: _Pt, step: _Step, best: _Best, mu: float):
    """Levenberg-Marquardt on the system of ``step``: z = -(J'J + mu s I)^-1 J'F (s the largest
    diagonal entry of J'J), mu raised tenfold until the residual over the equalised domains
    shrinks, lowered tenfold after a success. Returns (the point or None, mu)."""
    idx, m, gm = step.idx, len(step.idx), float(pt.g.max())
    res0 = pt.g[idx] - gm
    merit0 = float(res0 @ res0)
    JtJ, JtF = step.J.T @ step.J, step.J.T @ step.F
    scale = max(float(np.diag(JtJ).max()), 1e-300)
    for _ in range(HALVINGS):
        z = np.linalg.solve(JtJ + mu * scale * np.eye(m + 1), -JtF)
        theta = pt.theta + step.push
        theta[idx] += np.clip(z[:m], -STEP, STEP)
        trial = _Pt(inner, theta)
        best.add(trial)
        r = trial.g[idx] - (gm + z[m])
        if r @ r < merit0 or (merit0 < 1e-20 and trial.own_gap < pt.own_gap):
            return trial, max(0.1 * mu, LM_MIN)
        mu *= 10.0
    return None, mu
