"""Exact solvers for the robust gate on finite spaces, all graded by one certificate.

`solve` (minimax gate, lam*), `solve_fixed` (the gate for one fixed mixture) and `solve_static`
(the best constant gate). Methods: ``waterfill`` (numpy/scipy only) and ``cvxpy`` (reference,
imported lazily so that ``waterfill`` never loads cvxpy).
"""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import brentq

from ..divergences import entropy, kl, mixture
from ..gates import envelope, g1_feasibility
from ..problem import DiscreteProblem
from .solution import Solution
from .waterfill import InnerProblem, model_to_gate, solve_waterfill

__all__ = ["METHODS", "Solution", "solve", "solve_fixed", "solve_static", "infinite_loss_reason"]

METHODS = ("waterfill", "cvxpy")


def infinite_loss_reason(problem: DiscreteProblem) -> str:
    """Non-empty when every gate has infinite KL: some domain sees x that no expert covers."""
    _, hi = envelope(problem)
    bad = np.argwhere((problem.P > 0) & (hi == 0)[None, :])
    if len(bad) == 0:
        return ""
    k, x = bad[0]
    return (f"every expert gives probability 0 to outcome {x}, which domain '{problem.names[k]}' "
            f"puts mass on, so KL is infinite for every gate; no finite robust gate exists")


def _repair(q, lo, hi) -> np.ndarray:
    """Nearest point of {lo <= q <= hi, sum q = 1} along q + tau (fixes solver round-off)."""
    q = np.clip(q, lo, hi)
    f = lambda tau: np.clip(q + tau, lo, hi).sum() - 1.0
    span = 1.0 + np.abs(q).max()
    if abs(f(0.0)) <= 1e-14 or f(-span) >= 0 or f(span) <= 0:   # done, or the box is one point
        return q
    tau = brentq(f, -span, span, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return np.clip(q + tau, lo, hi)


def _infeasible(problem, method, support, reason, t0) -> Solution:
    return Solution(status="infeasible", method=method, solver="none", support=support,
                    reason=reason, seconds=time.perf_counter() - t0)


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")


def _run(problem: DiscreteProblem, method: str, support: str, lam_fixed) -> Solution:
    _check(method)
    t0 = time.perf_counter()
    feas = g1_feasibility(problem, support)
    if not feas.feasible:
        return _infeasible(problem, method, support, feas.reason, t0)
    reason = infinite_loss_reason(problem)
    if reason:
        return _infeasible(problem, method, support, reason, t0)
    inner = InnerProblem(problem, support)      # holds the support mask, P on it and the envelope
    mask, lo, hi = inner.mask, inner.lo, inner.hi

    def certificate(q, lam) -> tuple[float, float, np.ndarray]:
        """(value, primal - weak-duality bound at lam, per-domain KL): solver independent."""
        per_domain = inner.kl_per_domain(q)
        bound = inner.dual_bound(lam, *inner.model(lam))
        if lam_fixed is None:
            value = primal = float(per_domain.max())
        else:
            value, primal = float(kl(mixture(lam, inner.P), q)), float(lam @ per_domain)
        return value, primal - bound, per_domain

    if method == "waterfill":
        raw = solve_waterfill(problem, support, lam_fixed=lam_fixed, inner=inner)
        solver = "waterfill-newton"
        q = raw["q"]
    else:
        from .conic import solve_conic
        raw = solve_conic(problem, support, lam_fixed=lam_fixed,
                          certify=lambda q, lam: certificate(_repair(q, lo, hi), lam)[1])
        solver = raw["solver"]
        q = _repair(raw["q"], lo, hi)
    lam = raw["lam"]
    model, gate = model_to_gate(problem, q, mask)
    value, gap, per_domain = certificate(model[mask], lam)   # of the model actually returned
    seconds = time.perf_counter() - t0
    return Solution(status="optimal", method=method, solver=solver, support=support, value=value,
                    lam=lam, per_domain_kl=per_domain, model=model, gate=gate,
                    duality_gap=gap, seconds=seconds,
                    iterations=raw.get("iterations", 0))


def solve(problem: DiscreteProblem, method: str = "waterfill", support: str = "domains") -> Solution:
    """Robust minimax gate ``min_{g in G1} max_lam KL(P_lam || pi_g)`` (PAPER.md sections 1-2).

    ``value`` = V* (nats), ``lam`` = least-favourable mixture, ``duality_gap`` = certificate.
    """
    return _run(problem, method, support, None)


def solve_fixed(problem: DiscreteProblem, lam, method: str = "waterfill",
                support: str = "domains") -> Solution:
    """Best gate in G1 for one fixed mixture: q = clip(P_lam / nu, lo, hi) (PAPER.md section 2).

    ``value`` = KL(P_lam || pi_g); the gap certifies the minimum of sum_k lam[k] KL(P[k] || q),
    which differs from KL(P_lam || q) by the constant JSD_lam.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (problem.p,) or np.any(lam < 0) or abs(lam.sum() - 1) > 1e-9:
        raise ValueError(f"lam must be a point of the {problem.p}-simplex (got {lam.tolist()})")
    return _run(problem, method, support, lam)


def static_certificate(problem: DiscreteProblem, w, lam) -> tuple[float, float]:
    """(primal, lower bound) for the best constant gate, evaluated in numpy.

    primal = max_k KL(P[k] || w @ E). Lower bound at lam: by convexity of
    f(w) = -sum_x P_lam(x) log(w @ E)(x), f* >= f(w) + min_j (grad_j - grad . w) (the
    Frank-Wolfe gap), so  V_static >= sum lam (-H(P)) + f(w) + min_j (grad_j - grad . w).
    """
    seen = np.any(problem.P > 0, axis=0)
    P, E = problem.P[:, seen], problem.E[:, seen]
    pi = w @ E
    primal = float(kl(P, pi).max())
    a = lam @ P
    with np.errstate(divide="ignore"):
        f = -float(np.sum(a * np.log(pi)))
        grad = -(E @ (a / pi))
    bound = float(lam @ -entropy(P)) + f + float(np.min(grad) - grad @ w)
    return primal, bound


def solve_static(problem: DiscreteProblem) -> dict:
    """Best constant gate w (cvxpy), with its exact value and a Frank-Wolfe duality gap."""
    from .conic import solve_static_conic
    t0 = time.perf_counter()
    raw = solve_static_conic(problem, certify=lambda w, lam: float(np.subtract(
        *static_certificate(problem, w, lam))))
    primal, bound = static_certificate(problem, raw["w"], raw["lam"])
    return {"w": raw["w"], "lam": raw["lam"], "value": primal, "duality_gap": primal - bound,
            "solver": raw["solver"], "seconds": time.perf_counter() - t0}
