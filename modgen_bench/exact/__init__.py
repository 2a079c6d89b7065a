"""Exact solvers for the robust gate on finite spaces, all graded by one certificate.

`solve` (minimax gate, lam*), `solve_fixed` (the gate for one fixed mixture) and `solve_static`
(the best constant gate). Methods: ``waterfill`` (numpy/scipy only) and ``cvxpy`` (reference,
imported lazily so that ``waterfill`` never loads cvxpy).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..divergences import entropy, kl, mixture
from ..gates import FEAS_TOL, envelope, g1_feasibility, gate_from_model
from ..problem import DiscreteProblem
from ..threads import blas_threads
from . import path_conic, path_waterfill  # noqa: F401  (register the built-in solver paths)
from .budget import Budget, default_time_limit
from .paths import PathContext, PathResult, chain, methods, register_path
from .solution import Solution
from .waterfill import FLAT_SUM_TOL, InnerProblem, solve_waterfill

__all__ = [
    "Solution",
    "solve",
    "solve_fixed",
    "solve_static",
    "infinite_loss_reason",
    "tolerance",
    "certified",
    "methods",
    "register_path",
    "PathResult",
    "PathContext",
    "solve_waterfill",
    "TOL",
    "RTOL",
]

#: An answer is `optimal` only when its duality gap is at most TOL + RTOL * |value| (nats).
TOL = 1e-9
RTOL = 1e-9
#: A model counts as a primal point when |sum q - 1| <= SUM_TOL: the slack G1's test allows
#: (gates.FEAS_TOL); the value is graded conservatively for the sum (see `_run`'s grade).
SUM_TOL = FEAS_TOL
#: The static gate's certificate is first order (a Frank-Wolfe gap at cvxpy's w): Clarabel's w
#: gives 7e-8 .. 3e-7 on small problems, so the static default is 1e-6 (theory_checks' bar too).
STATIC_TOL = 1e-6
#: From this many entries of P on, a solve runs its BLAS work on one thread (`threads`): the
#: products are memory-bound p-row matvecs where more threads gain little and oversubscription
#: (other BLAS users on the cores) costs 2-4x; below it OpenBLAS uses one thread for such
#: products anyway, and the limit's ~8 us is saved.
ONE_BLAS_THREAD_FROM = 20_000
#: ... or from this many flops of the dual Hessian's p x N x p product on: OpenBLAS splits a GEMM
#: over its threads from M N K > 4 * 65536 on, however small N (p = 59, N = 156: the solve
#: took 0.05 s thread CPU with one thread, 0.1-0.8 s with the default threads on 2 shared cores,
#: enough to run a path out of its share of the budget).
ONE_BLAS_THREAD_FROM_GEMM = 4 * 65536


def _blas_limit(problem: DiscreteProblem) -> int | None:
    """1 (one BLAS thread) for p x N >= ONE_BLAS_THREAD_FROM or p x p x N >=
    ONE_BLAS_THREAD_FROM_GEMM, else None (the pool untouched)."""
    p, N = problem.p, problem.N
    return 1 if p * N >= ONE_BLAS_THREAD_FROM or p * p * N >= ONE_BLAS_THREAD_FROM_GEMM else None


def infinite_loss_reason(problem: DiscreteProblem, seen=None, hi=None) -> str:
    """Non-empty when every gate has infinite KL: some domain sees x that no expert covers.

    ``seen`` (X0 as a mask) and ``hi`` (max_k E[k]) may be passed when already computed."""
    seen = np.any(problem.P > 0, axis=0) if seen is None else seen
    hi = envelope(problem)[1] if hi is None else hi
    if hi.all():  # every outcome covered by some expert (the usual case)
        return ""
    xs = np.flatnonzero(seen & (hi == 0))
    if len(xs) == 0:
        return ""
    x = int(xs[0])
    k = int(np.flatnonzero(problem.P[:, x] > 0)[0])
    return (
        f"every expert gives probability 0 to outcome {x}, which domain '{problem.names[k]}' "
        f"puts mass on, so KL is infinite for every gate; no finite robust gate exists"
    )


def _infeasible(problem, method, support, reason, t0) -> Solution:
    return Solution(
        status="infeasible",
        method=method,
        solver="none",
        support=support,
        reason=reason,
        seconds=time.perf_counter() - t0,
    )


def _check(method: str) -> None:
    if method not in methods():
        raise ValueError(f"unknown method '{method}'; choose one of {', '.join(methods())}")


def tolerance(value: float, tol: float = TOL, rtol: float = RTOL) -> float:
    """The certificate a status `optimal` needs: tol + rtol * |value| (nats)."""
    return tol + rtol * abs(value) if math.isfinite(value) else tol


def certified(value: float, gap: float, tol: float = TOL, rtol: float = RTOL) -> bool:
    """True iff value and gap are finite and |gap| <= tol + rtol |value|.

    A gap below -tol means the primal value and the weak-duality bound disagree beyond rounding
    (one of them is wrong), so it certifies nothing either."""
    return bool(
        math.isfinite(value) and math.isfinite(gap) and abs(gap) <= tolerance(value, tol, rtol)
    )


class _Grade:
    """The one certificate: every path's model and lam graded the same way, and the best primal
    model (smallest primal value) and best dual bound (largest) kept across paths, so two partial
    answers can certify together."""

    def __init__(self, inner: InnerProblem, lam_fixed):
        self.inner, self.lam_fixed = inner, lam_fixed
        self.primal = None  # (primal, value, q, per_domain, path)
        self.bound = None  # (bound, lam, path)
        self.pair = None  # (own gap, lam) of the path whose own gap was least

    def grade(self, q, per_domain=None) -> tuple[float, float, np.ndarray]:
        """(value, primal, per-domain KL) of a model q on the support; a q outside the feasible
        set (box lo <= q <= hi, sum within SUM_TOL of 1, or of the `InnerProblem.target` sum
        to rounding) is no primal point: value inf.

        A sum s > 1 is graded conservatively: KL(P || q / s) = KL(P || q) + log s, so the value
        counts + log s (a sum below 1 only raises KL(P || q) over the normalised model's)."""
        inner = self.inner
        per_domain = inner.kl_per_domain(q) if per_domain is None else per_domain
        s = q.sum()
        in_sum = abs(s - 1.0) <= SUM_TOL or abs(s - inner.target) <= FLAT_SUM_TOL
        if not (in_sum and (q >= inner.lo).all() and (q <= inner.hi).all()):
            return np.inf, np.inf, per_domain
        if s > 1.0:
            per_domain = per_domain + np.log(s)
        if self.lam_fixed is None:
            return float(per_domain.max()), float(per_domain.max()), per_domain
        with np.errstate(invalid="ignore"):
            primal = float(self.lam_fixed @ per_domain)
        return float(kl(mixture(self.lam_fixed, inner.P), q)), primal, per_domain

    def bound_at(self, lam, b=None) -> float:
        """The dual bound D(lam) at q(lam) from lam @ P; ``b``: that number when the path
        computed it at this lam from lam @ P."""
        b = self.inner.dual_bound(lam, *self.inner.model(lam)) if b is None else b
        return b if np.isfinite(b) else -np.inf

    def certify(self, q, lam) -> float:
        """primal(q) - D(lam): the gap a candidate pair would have."""
        return self.grade(q)[1] - self.bound_at(lam)

    def add(self, res: PathResult) -> float:
        """Grade one path's answer, keep the best; return its own gap (primal - bound)."""
        value, primal, per_domain = self.grade(res.model, res.per_domain_kl)
        bound = self.bound_at(res.lam, res.bound)
        name = res.solver or res.path
        gap = primal - bound
        if np.isfinite(gap) and (self.pair is None or gap < self.pair[0]):
            self.pair = (gap, res.lam)
        if np.isfinite(primal) and (self.primal is None or primal < self.primal[0]):
            self.primal = (primal, value, res.model, per_domain, name)
        if self.bound is None or bound > self.bound[0]:
            self.bound = (bound, res.lam, name)
        return gap

    def done(self, tol, rtol) -> bool:
        return (
            self.primal is not None
            and self.bound is not None
            and certified(self.primal[1], self.primal[0] - self.bound[0], tol, rtol)
        )

    def finite_bound(self) -> None:
        """Weak duality gives a finite bound at any lam with nu > 0: when no path found one, take
        the uniform mixture at nu = 1 (PAPER.md section 2), so the interval is informative."""
        if self.primal is None or (self.bound is not None and np.isfinite(self.bound[0])):
            return
        p = self.inner.P.shape[0]
        lam = self.lam_fixed if self.lam_fixed is not None else np.full(p, 1.0 / p)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            b = self.inner.bound_at_nu(lam, 1.0)
        if self.bound is None or b > self.bound[0]:
            self.bound = (b, lam, "dual-at-nu-1")


FAILURES = (np.linalg.LinAlgError, FloatingPointError, ArithmeticError, RuntimeError)


def _attempt(path, ctx: PathContext) -> tuple[PathResult | None, str]:
    """(result, failure note) of one path; a path that raises is a failed attempt, not a crash."""
    try:
        return path.run(ctx), ""
    except FAILURES as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"{path.name}: {type(exc).__name__}: {first}"


def _run(
    problem: DiscreteProblem,
    method: str,
    support: str,
    lam_fixed,
    tol: float = TOL,
    rtol: float = RTOL,
    fallback: bool = True,
    time_limit: float | None = None,
) -> Solution:
    """Try the registered solver paths in turn (`paths.chain`) until the certificate is within
    tolerance (`certified`), within the time budget (``time_limit`` seconds; None: by size,
    `budget.default_time_limit`). Every path is graded by the same solver-independent
    certificate (`_Grade`). When nothing certifies, status ``inaccurate`` with the interval
    ``[dual bound, primal value]`` in ``extra["bound"]``.
    """
    _check(method)
    t0 = time.perf_counter()
    inner = InnerProblem(problem, support)  # holds the support mask, P on it and the envelope
    # every outcome on the support: a slice (a view) instead of a boolean gather of both sums
    feas = g1_feasibility(
        problem,
        support,
        hi=inner.hi_full,
        lo=inner.lo_full,
        mask=slice(None) if inner.all_outcomes else inner.mask,
    )
    reason = feas.reason or infinite_loss_reason(problem, seen=inner.seen, hi=inner.hi_full)
    if reason:
        return _infeasible(problem, method, support, reason, t0)
    limit = default_time_limit(problem.p, problem.N) if time_limit is None else time_limit
    budget = Budget.start(limit)
    grade = _Grade(inner, lam_fixed)
    ctx = PathContext(
        problem,
        support,
        inner,
        lam_fixed,
        budget=budget,
        certify=grade.certify,
        stop=lambda value: 0.5 * tolerance(value, tol, rtol),
    )
    attempts, notes, iterations = [], [], 0
    paths = chain(method, "fixed" if lam_fixed is not None else "minimax", fallback)
    for i, path in enumerate(paths):
        if budget.expired() and attempts:  # the first path always runs: an interval
            notes.append(f"time limit of {limit:.3g} CPU s reached before {path.name}")
            break
        ctx.budget = budget.share(1.0 if i == len(paths) - 1 else 0.5)
        res, note = _attempt(path, ctx)
        if res is None:
            if note:
                notes.append(note)
                attempts.append({"solver": path.name, "gap": None, "stopped": "failed"})
            continue
        iterations += res.iterations
        gap = grade.add(res)
        attempts.append({"solver": res.solver or res.path, "gap": gap, "stopped": res.stopped})
        ctx.best_lam = grade.bound[1]
        ctx.pair_lam = grade.pair[1] if grade.pair else None
        if grade.done(tol, rtol):
            break
    grade.finite_bound()
    return _answer(
        problem, method, support, inner, grade, tol, rtol, t0, iterations, attempts, notes
    )


def _answer(
    problem, method, support, inner, grade: _Grade, tol, rtol, t0, iterations, attempts, notes
) -> Solution:
    """The `Solution` of a chain: optimal when the best pair certifies, else inaccurate."""
    seconds = time.perf_counter() - t0
    extra = {"attempts": attempts, "tol": None}
    if inner.target != 1.0:
        extra["sum_target"] = inner.target
    if grade.primal is None or grade.bound is None:
        return Solution(
            status="inaccurate",
            method=method,
            solver="none",
            support=support,
            seconds=seconds,
            iterations=iterations,
            extra=extra,
            reason="no solver returned a finite primal value; " + "; ".join(notes),
        )
    primal, value, q, per_domain, name = grade.primal
    bound, lam, bound_name = grade.bound
    gap = primal - bound
    extra.update(tol=tolerance(value, tol, rtol), bound=[bound, primal])
    if bound_name != name:
        extra["bound_from"] = bound_name
    ok = certified(value, gap, tol, rtol)
    mask = inner.mask
    if inner.all_outcomes:  # q is this solve's own array: no copy
        model = q
    else:
        model = np.zeros(problem.N)
        model[mask] = q
    stops = ", ".join(f"{a['solver']} ({a['stopped']})" for a in attempts)
    return Solution(
        status="optimal" if ok else "inaccurate",
        method=method,
        solver=name,
        support=support,
        value=value,
        lam=lam,
        per_domain_kl=per_domain,
        model=model,
        gate_fn=lambda: gate_from_model(model, problem.E, mask),
        duality_gap=gap,
        gate_rows=lambda s: gate_from_model(model[s], problem.E[:, s], mask[s]),
        seconds=seconds,
        iterations=iterations,
        extra=extra,
        reason=""
        if ok
        else (
            f"no solver certified the answer: best interval "
            f"[{bound:.10g}, {primal:.10g}] (gap {gap:.3g} > tol "
            f"{tolerance(value, tol, rtol):.3g}); tried {stops}"
            + ("; " + "; ".join(notes) if notes else "")
        ),
    )


def solve(
    problem: DiscreteProblem,
    method: str = "waterfill",
    support: str = "domains",
    tol: float = TOL,
    rtol: float = RTOL,
    fallback: bool = True,
    time_limit: float | None = None,
) -> Solution:
    """Robust minimax gate ``min_{g in G1} max_lam KL(P_lam || pi_g)`` (PAPER.md sections 1-2).

    ``value`` = V* (nats), ``lam`` = least-favourable mixture, ``duality_gap`` = certificate.
    Status ``optimal`` only when the gap is within ``tol + rtol |value|`` (`certified`); else the
    other solver paths are tried (``fallback``) within ``time_limit`` seconds (None: by size,
    `budget.default_time_limit`) and, failing all, status ``inaccurate``.
    """
    with blas_threads(_blas_limit(problem)):
        return _run(problem, method, support, None, tol, rtol, fallback, time_limit)


def solve_fixed(
    problem: DiscreteProblem,
    lam,
    method: str = "waterfill",
    support: str = "domains",
    tol: float = TOL,
    rtol: float = RTOL,
    fallback: bool = True,
    time_limit: float | None = None,
) -> Solution:
    """Best gate in G1 for one fixed mixture: q = clip(P_lam / nu, lo, hi) (PAPER.md section 2).

    ``value`` = KL(P_lam || pi_g); the gap certifies the minimum of sum_k lam[k] KL(P[k] || q),
    which differs from KL(P_lam || q) by the constant JSD_lam.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (problem.p,) or np.any(lam < 0) or abs(lam.sum() - 1) > 1e-9:
        raise ValueError(f"lam must be a point of the {problem.p}-simplex (got {lam.tolist()})")
    with blas_threads(_blas_limit(problem)):
        return _run(problem, method, support, lam, tol, rtol, fallback, time_limit)


def static_certificate(problem: DiscreteProblem, w, lam) -> tuple[float, float]:
    """(primal, lower bound) for the best constant gate, evaluated in numpy.

    primal = max_k KL(P[k] || w @ E). Lower bound at lam: by convexity of
    f(w) = -sum_x P_lam(x) log(w @ E)(x), f* >= f(w) + min_j (grad_j - grad . w) (the
    Frank-Wolfe gap), so  V_static >= sum lam (-H(P)) + f(w) + min_j (grad_j - grad . w).
    """
    seen = np.any(problem.P > 0, axis=0)
    P, E = problem.P[:, seen], problem.E[:, seen]
    pi = w @ E
    with np.errstate(divide="ignore"):
        primal = float(kl(P, pi).max())
    a = lam @ P
    with np.errstate(divide="ignore", invalid="ignore"):
        f = -float(np.sum(a * np.log(pi)))
        grad = -(E @ (a / pi))
    bound = float(lam @ -entropy(P)) + f + float(np.min(grad) - grad @ w)
    return primal, bound if np.isfinite(bound) else -np.inf


def _static_closed_form(problem: DiscreteProblem):
    """(w, lam) when every constant gate gives the same model (p = 1, or all experts equal):
    w uniform and lam the vertex of the largest KL certify exactly; None otherwise."""
    E = problem.E
    if problem.p > 1 and not (E == E[0]).all():
        return None
    w = np.full(problem.p, 1.0 / problem.p)
    lam = np.zeros(problem.p)
    with np.errstate(divide="ignore"):
        lam[int(np.argmax(kl(problem.P, w @ E)))] = 1.0
    return w, lam


def solve_static(
    problem: DiscreteProblem,
    tol: float = STATIC_TOL,
    rtol: float = RTOL,
    time_limit: float | None = None,
) -> Solution:
    """Best constant gate w (cvxpy), with its exact value and a Frank-Wolfe duality gap.

    Returns a `Solution` (``w``: the weights, ``model``: w @ E, ``support``: "static"):
    ``status`` "optimal" when the gap is within ``tol + rtol |value|``, "infeasible" when every
    constant gate has infinite KL, else "inaccurate" with ``extra["bound"]`` = [lower bound,
    primal value] (finite: when every conic solver fails, the uniform gate is graded).
    """
    from .conic import ConicFailure, solve_static_conic

    t0 = time.perf_counter()
    reason = infinite_loss_reason(problem)
    if reason:
        return _infeasible(problem, "cvxpy", "static", reason, t0)
    limit = default_time_limit(problem.p, problem.N) if time_limit is None else time_limit
    found, solver, note = _static_closed_form(problem), "closed-form", ""
    if found is None:
        try:
            raw = solve_static_conic(
                problem,
                certify=lambda w, lam: float(np.subtract(*static_certificate(problem, w, lam))),
                time_left=limit,
            )
            found, solver = (raw["w"], raw["lam"]), raw["solver"]
        except ConicFailure as exc:
            p = problem.p
            found, solver, note = (np.full(p, 1.0 / p), np.full(p, 1.0 / p)), "none", str(exc)
    w, lam = found
    primal, bound = static_certificate(problem, w, lam)
    gap = primal - bound
    ok = certified(primal, gap, tol, rtol)
    with np.errstate(divide="ignore"):
        per_domain = kl(problem.P, w @ problem.E)
    return Solution(
        status="optimal" if ok else "inaccurate",
        method="cvxpy",
        solver=solver,
        support="static",
        value=primal,
        lam=lam,
        per_domain_kl=per_domain,
        model=w @ problem.E,
        w=w,
        duality_gap=gap,
        reason=""
        if ok
        else (
            note or f"the Frank-Wolfe gap {gap:.3g} exceeds tol {tolerance(primal, tol, rtol):.3g}"
        ),
        seconds=time.perf_counter() - t0,
        extra={"bound": [bound, primal], "tol": tolerance(primal, tol, rtol)},
    )
