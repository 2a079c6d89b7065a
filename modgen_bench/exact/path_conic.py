"""The cvxpy solver paths (reference; cvxpy is imported only when one runs).

``cvxpy`` is the q-form of `conic.solve_conic` (minimax and fixed mixture); ``cvxpy-log`` the
log-space form `conic.solve_log_conic`, tried only as a fallback of the water-filling chain
(on masses down to 1e-300 its model is good where q(lam) is not).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .paths import PathContext, PathResult, register_path

__all__ = ["repair"]


def repair(q, lo, hi, target: float = 1.0) -> np.ndarray:
    """Nearest point of {lo <= q <= hi, sum q = target} along q + tau (fixes solver round-off)."""
    q = np.clip(q, lo, hi)

    def f(tau):
        return np.clip(q + tau, lo, hi).sum() - target

    span = 1.0 + np.abs(q).max()
    if abs(f(0.0)) <= 1e-14 or f(-span) >= 0 or f(span) <= 0:  # done, or the box is one point
        return q
    tau = brentq(f, -span, span, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return np.clip(q + tau, lo, hi)


@register_path("cvxpy", method="cvxpy", rank=2, reference=True)
def cvxpy_path(ctx: PathContext) -> PathResult:
    with ctx.budget.excluded():
        from .conic import solve_conic
    inner = ctx.inner

    def fix(q):
        return repair(q, inner.lo, inner.hi, inner.target)

    raw = solve_conic(
        ctx.problem,
        ctx.support,
        lam_fixed=ctx.lam_fixed,
        certify=lambda q, lam: ctx.certify(fix(q), lam),
        time_left=ctx.budget.left(),
    )
    return PathResult(model=fix(raw["q"]), lam=raw["lam"], path="cvxpy", solver=raw["solver"])


@register_path("cvxpy-log", method="cvxpy", kinds=("minimax",), rank=1, role="fallback")
def cvxpy_log_path(ctx: PathContext) -> PathResult:
    with ctx.budget.excluded():
        from .conic import solve_log_conic
    inner = ctx.inner
    raw = solve_log_conic(
        inner.P, inner.neg_entropy, inner.lo, inner.hi, time_left=ctx.budget.left()
    )
    # the model is the solver's u, put on the feasible set by the water level
    # (clip(t e^u, lo, hi), sum 1: multiplicative, so tiny masses keep their ratios)
    u = raw["u"]
    with np.errstate(over="ignore", invalid="ignore"):
        q = inner.model_from(np.exp(u - u.max()))[0]
    return PathResult(model=q, lam=raw["lam"], path="cvxpy-log", solver=raw["solver"])
