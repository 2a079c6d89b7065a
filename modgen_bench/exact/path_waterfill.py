"""The water-filling solver paths (numpy/scipy only), registered in the exact core's chain.

``closed-form`` answers a one-point feasible set (floor or ceiling summing to 1, or lo = hi);
``waterfill`` the fixed-mixture problem in closed form; the Newton paths of `waterfill` the
minimax problem (PAPER.md section 2): projected Newton from the uniform mixture, Newton in
log-weights, the same from the best mixture so far, the KKT polish; after the conic fallbacks,
the Newton methods again from the best mixture found (``-polish``).
"""

from __future__ import annotations

import numpy as np

from .paths import PathContext, PathResult, register_path
from .waterfill import NewtonResult, entropic_path, fixed_mixture, kkt_path, newton_path

__all__ = ["closed_form"]


def _result(res: NewtonResult, name: str) -> PathResult:
    return PathResult(
        model=res.q,
        lam=res.lam,
        value=float(res.g.max()),
        bound=res.bound,
        iterations=res.iterations,
        path=name,
        per_domain_kl=res.g,
        stopped=res.stopped,
    )


@register_path("closed-form", method="waterfill", rank=0)
def closed_form(ctx: PathContext) -> PathResult | None:
    """The feasible set is one point when the floor pins q = lo (sum lo = target), the ceiling
    pins q = hi (sum hi = target), or lo = hi on the support: q is that point, lam the vertex of
    the largest KL (or the fixed mixture), and the bound D(lam) exact (PAPER.md section 2: q is
    the box minimiser at nu = inf or nu = 0 for every lam). None when the set is not one point."""
    inner = ctx.inner
    # lo = hi everywhere gives equal sums, so a ceiling summing above the floor has a width
    # (the full-length test runs only when the sums tie)
    flat = inner.ceiling_sum == inner.lo_sum and not inner.width.any()
    if not (inner.floor_pinned or inner.ceiling_sum <= inner.target or flat):
        return None
    p = inner.P.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        q, t = inner.model_from(inner.mix(np.full(p, 1.0 / p)))
        g = inner.kl_per_domain(q)
        if ctx.fixed:
            lam = np.asarray(ctx.lam_fixed, dtype=np.float64)
        else:
            lam = np.zeros(p)
            lam[int(np.argmax(g))] = 1.0
        bound = inner.dual_bound(lam, q, t)
    return PathResult(
        model=q, lam=lam, value=float(g.max()), bound=bound, path="closed-form", per_domain_kl=g
    )


@register_path("waterfill", method="waterfill", kinds=("fixed",), rank=1)
def fixed_path(ctx: PathContext) -> PathResult:
    with np.errstate(over="ignore", invalid="ignore"):
        return _result(fixed_mixture(ctx.inner, ctx.lam_fixed), "waterfill")


def _newton_path(name: str, solver, start: str | None, rank: float, role: str = "main"):
    """Register a Newton path: ``start`` None (the uniform mixture), "best" (the best bound's
    lam so far) or "pair" (the lam of the least own gap so far, else the best bound's)."""

    def run(ctx: PathContext) -> PathResult:
        lam0 = None
        if start == "best":
            lam0 = ctx.best_lam
        elif start == "pair":
            lam0 = ctx.pair_lam if ctx.pair_lam is not None else ctx.best_lam
        p = ctx.inner.P.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            return _result(solver(ctx.inner, p, ctx.stop, lam0=lam0, budget=ctx.budget), name)

    register_path(name, method="waterfill", kinds=("minimax",), rank=rank, role=role)(run)


_newton_path("waterfill-newton", newton_path, None, 1)
_newton_path("waterfill-entropic", entropic_path, None, 2)
_newton_path("waterfill-entropic-restart", entropic_path, "best", 3)
# the KKT polish starts where one path's own gap was least (q(lam) good there too); the best
# bound's lam may carry a poor q(lam)
_newton_path("waterfill-kkt-restart", kkt_path, "pair", 4)
_newton_path("waterfill-newton-polish", newton_path, "best", 1, role="polish")
_newton_path("waterfill-kkt-polish", kkt_path, "pair", 2, role="polish")
_newton_path("waterfill-entropic-polish", entropic_path, "best", 3, role="polish")
