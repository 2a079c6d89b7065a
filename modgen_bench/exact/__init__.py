"""Exact solvers for the robust gate on finite spaces, all graded by one certificate.

`solve` (minimax gate, lam*), `solve_fixed` (the gate for one fixed mixture) and `solve_static`
(the best constant gate). Methods: ``waterfill`` (numpy/scipy only) and ``cvxpy`` (reference,
imported lazily so that ``waterfill`` never loads cvxpy).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import brentq

from ..divergences import entropy, kl, mixture
from ..gates import FEAS_TOL, envelope, g1_feasibility, gate_from_model
from ..problem import DiscreteProblem
from .solution import Solution
from .waterfill import InnerProblem, solve_waterfill

__all__ = ["METHODS", "Solution", "solve", "solve_fixed", "solve_static", "infinite_loss_reason",
           "tolerance", "certified", "TOL", "RTOL"]

METHODS = ("waterfill", "cvxpy")

#: An answer is `optimal` only when its duality gap is at most TOL + RTOL * |value| (nats).
TOL = 1e-9
RTOL = 1e-9
#: A model counts as a primal point when |sum q - 1| <= SUM_TOL: the slack G1's test allows
#: (gates.FEAS_TOL); the value is graded conservatively for the sum (see `_run`'s grade).
SUM_TOL = FEAS_TOL
#: The static gate's certificate is first order (a Frank-Wolfe gap at cvxpy's w): Clarabel's w
#: gives 7e-8 .. 3e-7 on small problems, so the static default is 1e-6 (theory_checks' bar too).
STATIC_TOL = 1e-6


def infinite_loss_reason(problem: DiscreteProblem, seen=None, hi=None) -> str:
    """Non-empty when every gate has infinite KL: some domain sees x that no expert covers.

    ``seen`` (X0 as a mask) and ``hi`` (max_k E[k]) may be passed when already computed."""
    seen = np.any(problem.P > 0, axis=0) if seen is None else seen
    hi = envelope(problem)[1] if hi is None else hi
    if hi.all():                        # every outcome covered by some expert (the usual case)
        return ""
    xs = np.flatnonzero(seen & (hi == 0))
    if len(xs) == 0:
        return ""
    x = int(xs[0])
    k = int(np.flatnonzero(problem.P[:, x] > 0)[0])
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


def tolerance(value: float, tol: float = TOL, rtol: float = RTOL) -> float:
    """The certificate a status `optimal` needs: tol + rtol * |value| (nats)."""
    return tol + rtol * abs(value) if math.isfinite(value) else tol


def certified(value: float, gap: float, tol: float = TOL, rtol: float = RTOL) -> bool:
    """True iff value and gap are finite and |gap| <= tol + rtol |value|.

    A gap below -tol means the primal value and the weak-duality bound disagree beyond rounding
    (one of them is wrong), so it certifies nothing either."""
    return bool(math.isfinite(value) and math.isfinite(gap)
                and abs(gap) <= tolerance(value, tol, rtol))


def _paths(method: str, fixed: bool, fallback: bool) -> list[str]:
    """Solver paths tried in order: the requested method's first, then the other's (``fallback``).

    Water-filling paths: projected Newton from the uniform mixture; Newton in log-weights from
    the uniform mixture; the same from the best lam found so far (mixed with the uniform one);
    minimum-norm Newton on the KKT equalisation from the best lam (non-unique lam*). Then cvxpy:
    first the log-space form (``cvxpy-log``, `conic.solve_log_conic`), whose model is good where
    q(lam) is not (issue 9: on the seed-0 leftovers the best bound was within 1e-9 of V* and
    q(lam) 1e-8 .. 5e-6 above it), then the reference q-form; after them, the Newton methods
    again from the best lam so far (``-restart``)."""
    wf = (["waterfill"] if fixed else
          ["waterfill-newton", "waterfill-entropic", "waterfill-entropic-restart",
           "waterfill-kkt-restart"])
    if not fallback:
        return wf if method == "waterfill" else ["cvxpy"]
    polish = [] if fixed else ["waterfill-newton-restart", "waterfill-kkt-restart",
                               "waterfill-entropic-restart"]
    conic = ["cvxpy"] if fixed else ["cvxpy-log", "cvxpy"]     # the log form is minimax only
    return wf + conic + polish if method == "waterfill" else ["cvxpy"] + wf


def _run(problem: DiscreteProblem, method: str, support: str, lam_fixed, tol: float = TOL,
         rtol: float = RTOL, fallback: bool = True) -> Solution:
    """Try the solver paths in turn until the certificate is within tolerance (`certified`).

    Every path is graded by the same solver-independent certificate; across paths the best
    primal model (smallest primal value) and the best dual bound (largest, at its lam) are kept,
    so two partial answers can certify together. When nothing certifies, status ``inaccurate``
    with the interval ``[dual bound, primal value]`` in ``extra["bound"]``.
    """
    _check(method)
    t0 = time.perf_counter()
    inner = InnerProblem(problem, support)      # holds the support mask, P on it and the envelope
    feas = g1_feasibility(problem, support, mask=inner.mask, hi=inner.hi_full)
    if not feas.feasible:
        return _infeasible(problem, method, support, feas.reason, t0)
    reason = infinite_loss_reason(problem, seen=inner.seen, hi=inner.hi_full)
    if reason:
        return _infeasible(problem, method, support, reason, t0)
    mask, lo, hi = inner.mask, inner.lo, inner.hi
    fixed = lam_fixed is not None
    stop = lambda value: 0.5 * tolerance(value, tol, rtol)

    def grade(q, per_domain=None) -> tuple[float, float, np.ndarray]:
        """(value, primal, per-domain KL) of a model q on the support; a q outside the feasible
        set (box lo <= q <= hi, sum 1 within SUM_TOL) is no primal point: value inf.
        ``per_domain``: KL(P[k] || q) by `InnerProblem.kl_per_domain` when the path has it.

        A sum s != 1 within SUM_TOL (a box whose ceiling sums to 1 - 1e-11, feasible by
        gates.FEAS_TOL) is graded conservatively: KL(P || q / s) = KL(P || q) + log s, so the
        value counts + max(log s, 0)."""
        per_domain = inner.kl_per_domain(q) if per_domain is None else per_domain
        s = q.sum()
        if not (abs(s - 1.0) <= SUM_TOL and (q >= lo).all() and (q <= hi).all()):
            return np.inf, np.inf, per_domain
        if s > 1.0:
            per_domain = per_domain + np.log(s)
        if not fixed:
            return float(per_domain.max()), float(per_domain.max()), per_domain
        with np.errstate(invalid="ignore"):
            primal = float(lam_fixed @ per_domain)
        return float(kl(mixture(lam_fixed, inner.P), q)), primal, per_domain

    def bound_at(lam, b=None) -> float:
        """The dual bound D(lam) (`InnerProblem.dual_bound` at q(lam) from lam @ P); ``b``: that
        number when the path computed it at this lam from lam @ P (the water-filling paths
        return it with their lam; see `waterfill._newton`'s line search)."""
        b = inner.dual_bound(lam, *inner.model(lam)) if b is None else b
        return b if np.isfinite(b) else -np.inf

    best_primal = best_bound = None     # (primal, value, q, per_domain, path) / (bound, lam, path)
    best_pair = None                    # (own gap, lam) of the path whose own gap was least
    attempts, notes, iterations = [], [], 0
    for path in _paths(method, fixed, fallback):
        known = None, None          # (KL at q, D at lam) when the path returns them
        try:
            if path == "cvxpy":
                from .conic import ConicFailure, solve_conic
                try:
                    raw = solve_conic(problem, support, lam_fixed=lam_fixed,
                                      certify=lambda q, lam: grade(_repair(q, lo, hi))[1] - bound_at(lam))
                except ConicFailure as exc:
                    notes.append(str(exc))
                    attempts.append({"solver": "cvxpy", "gap": None})
                    continue
                q, lam, name = _repair(raw["q"], lo, hi), raw["lam"], raw["solver"]
            elif path == "cvxpy-log":
                from .conic import ConicFailure, solve_log_conic
                try:
                    raw = solve_log_conic(inner.P, inner.neg_entropy, lo, hi)
                except ConicFailure as exc:
                    notes.append(str(exc))
                    attempts.append({"solver": path, "gap": None})
                    continue
                # the model is the solver's u, put on the feasible set by the water level
                # (clip(t e^u, lo, hi), sum 1: multiplicative, so tiny masses keep their ratios)
                u = raw["u"]
                q = inner.model_from(np.exp(u - u.max()))[0]
                lam, name = raw["lam"], raw["solver"]
            else:
                kind = path.split("-")[1] if not fixed else "newton"
                restart = path.endswith("-restart") and best_bound is not None
                # the KKT polish starts where one path's own gap was least (q(lam) good too);
                # the best bound's lam may carry a poor q(lam)
                start = best_pair[1] if kind == "kkt" and best_pair else best_bound and best_bound[1]
                raw = solve_waterfill(problem, support, tol=stop, lam_fixed=lam_fixed, inner=inner,
                                      path=kind, lam0=start if restart else None)
                q, lam, name = raw["q"], raw["lam"], path
                known = raw["per_domain_kl"], raw["bound"]      # KL at q and D at lam
                iterations += raw.get("iterations", 0)
        except (np.linalg.LinAlgError, FloatingPointError, ArithmeticError) as exc:
            notes.append(f"{path}: {type(exc).__name__}: {exc}")
            attempts.append({"solver": path, "gap": None})
            continue
        value, primal, per_domain = grade(q, known[0])
        bound = bound_at(lam, known[1])
        attempts.append({"solver": name, "gap": primal - bound})
        if np.isfinite(primal - bound) and (best_pair is None or primal - bound < best_pair[0]):
            best_pair = (primal - bound, lam)
        if np.isfinite(primal) and (best_primal is None or primal < best_primal[0]):
            best_primal = (primal, value, q, per_domain, name)
        if best_bound is None or bound > best_bound[0]:
            best_bound = (bound, lam, name)
        if best_primal is not None and certified(best_primal[1], best_primal[0] - best_bound[0],
                                                 tol, rtol):
            break
    seconds = time.perf_counter() - t0
    extra = {"attempts": attempts, "tol": None}
    if best_primal is None or best_bound is None:
        return Solution(status="inaccurate", method=method, solver="none", support=support,
                        seconds=seconds, iterations=iterations, extra=extra,
                        reason="no solver returned a finite primal value; " + "; ".join(notes))
    primal, value, q, per_domain, name = best_primal
    bound, lam, bound_name = best_bound
    gap = primal - bound
    extra.update(tol=tolerance(value, tol, rtol), bound=[bound, primal])
    if bound_name != name:
        extra["bound_from"] = bound_name
    ok = certified(value, gap, tol, rtol)
    if inner.all_outcomes:          # q is this solve's own array: no copy
        model = q
    else:
        model = np.zeros(problem.N)
        model[mask] = q
    return Solution(status="optimal" if ok else "inaccurate", method=method, solver=name,
                    support=support, value=value, lam=lam, per_domain_kl=per_domain, model=model,
                    gate_fn=lambda: gate_from_model(model, problem.E, mask), duality_gap=gap,
                    gate_rows=lambda s: gate_from_model(model[s], problem.E[:, s], mask[s]),
                    seconds=seconds, iterations=iterations, extra=extra,
                    reason="" if ok else (f"no solver certified the answer: best interval "
                                          f"[{bound:.10g}, {primal:.10g}] (gap {gap:.3g} > tol "
                                          f"{tolerance(value, tol, rtol):.3g}); "
                                          f"tried {', '.join(a['solver'] for a in attempts)}"
                                          + ("; " + "; ".join(notes) if notes else "")))


def solve(problem: DiscreteProblem, method: str = "waterfill", support: str = "domains",
          tol: float = TOL, rtol: float = RTOL, fallback: bool = True) -> Solution:
    """Robust minimax gate ``min_{g in G1} max_lam KL(P_lam || pi_g)`` (PAPER.md sections 1-2).

    ``value`` = V* (nats), ``lam`` = least-favourable mixture, ``duality_gap`` = certificate.
    Status ``optimal`` only when the gap is within ``tol + rtol |value|`` (`certified`); else the
    other solver paths are tried (``fallback``) and, failing all, status ``inaccurate``.
    """
    return _run(problem, method, support, None, tol, rtol, fallback)


def solve_fixed(problem: DiscreteProblem, lam, method: str = "waterfill",
                support: str = "domains", tol: float = TOL, rtol: float = RTOL,
                fallback: bool = True) -> Solution:
    """Best gate in G1 for one fixed mixture: q = clip(P_lam / nu, lo, hi) (PAPER.md section 2).

    ``value`` = KL(P_lam || pi_g); the gap certifies the minimum of sum_k lam[k] KL(P[k] || q),
    which differs from KL(P_lam || q) by the constant JSD_lam.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (problem.p,) or np.any(lam < 0) or abs(lam.sum() - 1) > 1e-9:
        raise ValueError(f"lam must be a point of the {problem.p}-simplex (got {lam.tolist()})")
    return _run(problem, method, support, lam, tol, rtol, fallback)


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


def solve_static(problem: DiscreteProblem, tol: float = STATIC_TOL, rtol: float = RTOL) -> dict:
    """Best constant gate w (cvxpy), with its exact value and a Frank-Wolfe duality gap.

    ``status``: "optimal" when the gap is within ``tol + rtol |value|``, else "inaccurate" (also
    when every conic solver fails; then value and gap are inf and ``reason`` says why), with
    ``bound`` = [lower bound, primal value].
    """
    from .conic import ConicFailure, solve_static_conic
    t0 = time.perf_counter()
    try:
        raw = solve_static_conic(problem, certify=lambda w, lam: float(np.subtract(
            *static_certificate(problem, w, lam))))
    except ConicFailure as exc:
        p = problem.p
        return {"status": "inaccurate", "w": np.full(p, 1.0 / p), "lam": np.full(p, 1.0 / p),
                "value": np.inf, "duality_gap": np.inf, "bound": [-np.inf, np.inf],
                "solver": "none", "reason": str(exc), "seconds": time.perf_counter() - t0}
    primal, bound = static_certificate(problem, raw["w"], raw["lam"])
    gap = primal - bound
    ok = certified(primal, gap, tol, rtol)
    return {"status": "optimal" if ok else "inaccurate", "w": raw["w"], "lam": raw["lam"],
            "value": primal, "duality_gap": gap, "bound": [bound, primal],
            "solver": raw["solver"], "seconds": time.perf_counter() - t0}
