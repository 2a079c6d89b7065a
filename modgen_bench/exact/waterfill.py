"""Fast exact solver: closed-form inner problem (water-filling) and Newton on the p-dim dual.

PAPER.md section 2 ("Reduction"): on the support S the problem is

    V* = min_q max_k KL(P[k] || q)   s.t.  lo <= q <= hi,  sum_S q = 1,

with lo/hi the experts' envelope. Its Lagrangian dual over lam in the simplex is

    D(lam) = min_q sum_k lam[k] KL(P[k] || q) = -sum_k lam[k] H(P[k]) + min_q CE(P_lam, q),

whose inner minimiser is ``q(lam) = clip(t P_lam, lo, hi)`` with the scalar t = 1/nu chosen so that
q sums to 1 (found exactly: sum_S q is piecewise linear in t, so a safeguarded Newton step lands on
the root of the right piece). D is concave with gradient ``dD/dlam[k] = KL(P[k] || q(lam))``
(Danskin) and Hessian ``-sum_free P_k P_j / P_lam + F_k F_j / F`` (free = unclipped outcomes), so
the p-dimensional outer problem is solved by projected Newton: a simplex-constrained quadratic
model solved exactly by an active-set method, then a backtracking line search on D.

Two paths: ``newton`` (projected Newton in lam; quadratic convergence, and it lands
exactly on faces) and ``entropic`` (Newton in log-weights, `_entropic_newton`), which leaves a
vertex where D behaves like -lam log lam and weights of 1e-7 .. 1e-90 matter. Masses that
underflow (lam[k] P[k](x) < 1e-308) are lifted to Q_FLOOR so that KL stays finite. A Newton
iteration reads P about twice (the Hessian in one blocked pass, the mixture at the quadratic
model's optimum) plus a matvec for the KL gradient; a step the line search halves reads P once
more (its own mixture), so every bound a path returns is D at its own lam. From FUSE_FROM
outcomes on, a Newton point reads P once (`fused`: mixture, water level by a breakpoint search,
KL, D and the Hessian in one blocked pass) and the set-up's pass holds the uniform mixture's.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy.linalg.lapack import dgesv as _gesv

from ..gates import _check_support, sum_target
from ..problem import DiscreteProblem
from .budget import Budget
from .equalise import equalise
from .fused import block_step, fused_point, open_pass, settle
from .newton_result import NewtonResult

__all__ = ["InnerProblem", "NewtonResult", "solve_waterfill", "simplex_qp"]

GAP_TOL = 1e-10
MAX_NEWTON = 200
Q_FLOOR = 1e-300  # smallest model mass put where a domain has mass and t P_lam underflowed
ARMIJO_GAP_GROWTH = 4.0  # an Armijo step of the entropic Newton may raise the gap this much
THETA_STEP = 30.0  # largest change of one log-weight in one entropic Newton step
STALL = 20  # Newton iterations without halving the gap before a path gives up
FLAT_SUM_TOL = 1e-12  # |sum q - 1| accepted when no outcome is free (rounding only)
#: |sum q - 1| at which the water level is final: 4 ulps of 1. Asking for exactly 1 made the
#: safeguarded Newton step bisect the last ulps (up to ~6 more passes over q); the dual bound
#: is valid for any t and the primal grade counts a sum above 1 (`exact._run`), so a few ulps
#: move the certificate by ~1e-15 only.
SUM_ULPS = 4 * np.finfo(float).eps


#: Outcomes on the support from which a Newton point is evaluated in one pass over P (`fused`).
FUSE_FROM = 1 << 15

#: Columns per block of the fused passes: p x BLOCK float64 stays in cache while every
#: quantity of that block is accumulated, so P is read from memory once per pass.
BLOCK = 1 << 12


def _blocks(n: int):
    for b0 in range(0, n, BLOCK):
        yield slice(b0, min(b0 + BLOCK, n))


def _row_dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """sum_x A[k, x] B[k, x] for every row k: one BLAS dot per row (a batched matmul; einsum's
    own loop is ~3x slower on the set-up's blocks)."""
    return np.matmul(A[:, None, :], B[:, :, None])[:, 0, 0]


def _setup_blocked(P: np.ndarray, E: np.ndarray):
    """One blocked pass over P and E: X0 (``seen``), -H(P[k]), the envelope lo, hi and, from
    FUSE_FROM outcomes on, the uniform mixture's point: its mixture and the sums of its fused
    pass (`fused`; None when the exceptions exceeded the cap), for `fused.settle`; None below
    FUSE_FROM. Returns (seen, neg_entropy, lo, hi, first)."""
    p, N = P.shape
    seen, neg_entropy = np.zeros(N, dtype=bool), np.zeros(p)
    lo, hi = np.empty(N), np.empty(N)
    step = block_step(p)
    sums = open_pass(p, N, 1.0) if N >= FUSE_FROM else None
    a0, lam0 = (np.empty(N), np.full(p, 1.0 / p)) if N >= FUSE_FROM else (None, None)
    logP, positive = np.empty((p, step)), True
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for b0 in range(0, N, step):
            b = slice(b0, min(b0 + step, N))
            Pb, Eb = P[:, b], E[:, b]
            L = logP[:, : Pb.shape[1]]
            if positive:  # the common case: every outcome seen, no log 0
                ent = _row_dots(Pb, np.log(Pb, out=L))
                positive = bool(np.isfinite(ent).all())  # a zero gives 0 log 0 = NaN
            if positive:
                seen[b] = True
            else:  # zeros: this block again, and the later ones directly, with the floor
                seen[b] = Pb.max(axis=0) > 0
                # P log P with 0 log 0 = 0; entries below 1e-300 contribute < 1e-297 anyway
                ent = _row_dots(Pb, np.log(np.maximum(Pb, 1e-300, out=L), out=L))
            neg_entropy += ent
            lob, hib = Eb.min(axis=0, out=lo[b]), Eb.max(axis=0, out=hi[b])
            if a0 is not None:
                ab = np.matmul(lam0, Pb, out=a0[b])
                if sums is not None and not sums.add(Pb, ab, lob, hib, b0):
                    sums = None  # too many exceptions: the mixture is still kept
    return seen, neg_entropy, lo, hi, (a0, sums) if a0 is not None else None


def _safe_log(q: np.ndarray, has_zero: bool | None = None) -> np.ndarray:
    """log q with log 0 := 0 (q = 0 only where no domain has mass: P log q = 0 there).
    ``has_zero``: whether q has a zero, when the caller knows."""
    if not (has_zero if has_zero is not None else not q.all()):  # common: one SIMD log
        return np.log(q)
    return np.log(q, out=np.zeros_like(q), where=q > 0)  # no log(0) taken: no errstate needed


class InnerProblem:
    """The fixed-lam problem on the support: q(lam) = argmin_q CE(P_lam, q) over the envelope.

    Set-up reads P and E once each (blocked): X0 and -H(P[k]) from P, the envelope from E; P is
    not copied when the support is every outcome. ``seen`` (X0), ``lo_full`` and ``hi_full``
    (full length) serve the feasibility and infinite-loss tests of `modgen_bench.exact`.
    """

    def __init__(self, problem: DiscreteProblem, support: str = "domains"):
        _check_support(support)
        P, E = problem.P, problem.E
        p, N = P.shape
        first = None
        if N <= BLOCK:  # one block: the same arithmetic without the loops
            L = np.maximum(P, 1e-300)
            np.log(L, out=L)
            seen, neg_entropy = P.max(axis=0) > 0, np.einsum("kn,kn->k", P, L)
            lo, hi = E.min(axis=0), E.max(axis=0)
        else:
            seen, neg_entropy, lo, hi, first = _setup_blocked(P, E)
        mask = seen | (hi > 0) if support == "union" else seen
        self.seen, self.lo_full, self.hi_full = seen, lo, hi
        self.mask = mask
        self.all_outcomes = bool(mask.all())
        self.P = np.ascontiguousarray(P if self.all_outcomes else P[:, mask])  # (p, n)
        self.lo = lo if self.all_outcomes else lo[mask]  # (n,)
        self.hi = hi if self.all_outcomes else hi[mask]  # (n,)
        self.neg_entropy = neg_entropy  # (p,)  sum_x P log P = -H(P)
        self.lo_sum = float(self.lo.sum())
        self.ceiling_sum = float(self.hi.sum())  # > 1: some t has sum q = 1
        # the sum q aims at: 1, or the attainable sum nearest 1 when the floor or the ceiling
        # misses 1 by rounding (gates.FEAS_TOL); then the feasible set is the one point lo or hi
        self.target = sum_target(self.lo_sum, self.ceiling_sum)
        self.floor_pinned = self.lo_sum >= self.target
        self._log_of, self._logq, self._zero = None, None, False
        self.t = 1.0  # warm start for the water level
        # outcomes some domain sees where the box allows q = 0: t P_lam can underflow there
        seen_n = seen if self.all_outcomes else seen[mask]
        self.seen_n = seen_n
        self.underflow = (
            np.flatnonzero((self.lo == 0) & seen_n)
            if not self.lo.all()
            else np.empty(0, dtype=np.intp)
        )
        # the one-pass evaluation (`fused`) on large problems whose water level is finite and
        # positive for every lam (no pinned floor, a ceiling above the target)
        self.fuse = (
            self.P.shape[1] >= FUSE_FROM
            and not self.floor_pinned
            and self.ceiling_sum > self.target + 1e-12
        )
        self.fuse_misses = 0
        # the uniform mixture's point, accumulated during the set-up's pass (`_setup_blocked`)
        self.first = self.first_a = None
        if self.fuse and self.all_outcomes and first is not None:
            self.first_a, sums = first
            self.first = (
                settle(self, np.full(p, 1.0 / p), self.first_a, sums) if sums is not None else None
            )

    def mix(self, lam) -> np.ndarray:
        """P_lam = lam @ P on the support (one pass)."""
        return np.asarray(lam, dtype=np.float64) @ self.P

    def model(self, lam) -> tuple[np.ndarray, float]:
        """q(lam) = clip(t P_lam, lo, hi) with sum q = 1, and t = 1/nu (inf when nu = 0)."""
        return self.model_from(self.mix(lam))

    @functools.cached_property
    def width(self) -> np.ndarray:
        """hi - lo on the support (n,)."""
        return self.hi - self.lo

    def point(self, lam, a=None, hessian: bool = True) -> "Point":
        """The Newton point at lam (`Point`); ``a``: its mixture lam @ P when known;
        ``hessian``: whether a one-pass evaluation also accumulates the Hessian (else it is
        computed when asked for)."""
        return Point(self, np.asarray(lam, dtype=np.float64), a, hessian)

    def clip_model(self, a: np.ndarray, t: float) -> np.ndarray:
        """q = clip(t a, lo, hi) for a finite positive water level t (the fused point's model)."""
        q = np.multiply(a, t)
        np.maximum(q, self.lo, out=q)
        np.minimum(q, self.hi, out=q)
        return self._floor(q)

    def model_from(self, a: np.ndarray) -> tuple[np.ndarray, float]:
        """`model` given the mixture a = P_lam (so a line search needs no pass over P).

        The sum aimed at is `target` (1 unless the floor or ceiling misses 1 by rounding). A
        floor that sums to the target pins q = lo (t = 0, nu = inf); a ceiling that the mixture's
        support cannot exceed gives the nu = 0 branch (t = inf)."""
        lo, hi, c = self.lo, self.hi, self.target
        if self.floor_pinned:
            return self._floor(lo.copy()), 0.0
        # sum q as t -> inf: lo_sum + the width where a > 0 (all of it when a has no zero)
        # (the margin keeps a ceiling within rounding of the target on the exact test below)
        seen = None if self.ceiling_sum > c + 1e-12 and a.all() else a > 0
        if seen is not None and self.lo_sum + np.add.reduce(self.width, where=seen) <= c:
            # nu = 0: every outcome the mixture sees is at its ceiling; the rest of the mass
            # goes where the mixture is blind (the objective is indifferent there). The share
            # is clipped to [0, 1] of each blind width: rounding of the test above must never
            # push q below its floor or above its ceiling.
            q = np.where(seen, hi, lo)
            blind = ~seen
            room = self.width[blind].sum()
            need = c - q.sum()
            if room > 0 and need > 0:
                q[blind] += self.width[blind] * min(need / room, 1.0)
                np.minimum(q, hi, out=q)
            return self._floor(q), np.inf
        t, t_lo, t_hi = self.t, 0.0, np.inf
        r, q, free = np.empty_like(a), np.empty_like(a), np.empty(a.shape, dtype=bool)
        for _ in range(500):
            np.multiply(a, t, out=r)  # q = clip(t a, lo, hi), in place
            np.maximum(r, lo, out=q)
            np.minimum(q, hi, out=q)
            s = q.sum()
            if abs(s - c) <= SUM_ULPS:
                break
            if s < c:
                t_lo = t
            else:
                t_hi = t
            np.equal(q, r, out=free)  # unclipped: sum q has slope F there
            F = np.add.reduce(a, where=free)
            if F == 0 and abs(s - c) <= FLAT_SUM_TOL:
                # Every outcome is pinned to its box and the pins sum to c up to rounding: the
                # sum does not depend on t on this piece, so any t in it is a valid multiplier.
                # Bisecting on the rounding error's sign would drive t to 0 (nu to inf) and
                # wreck the bound.
                break
            C = s - F * t
            t_new = (c - C) / F if F > 0 else np.nan
            if not (t_lo < t_new < t_hi):
                # safeguard: bracket geometrically (t spans 1e-300 .. 1e300 on tiny masses; a
                # warm start 1e60 away from the root must not take 200 halvings)
                if np.isinf(t_hi):
                    t_new = 16.0 * t
                elif t_lo == 0.0:
                    t_new = t_hi / 16.0
                else:
                    t_new = np.sqrt(t_lo) * np.sqrt(t_hi)
            if t_new == t:
                break
            t = t_new
        self.t = t
        return self._floor(q), t

    def _floor(self, q: np.ndarray) -> np.ndarray:
        """Lift q(x) = 0 to min(hi, Q_FLOOR) where a domain sees x (tiny masses).

        There the minimiser is t P_lam(x) > 0, but lam[k] P[k](x) underflowed (1e-200 * 1e-142):
        a zero would make KL infinite for a domain the optimum keeps finite. The lifted q is a
        primal point (its sum moves by <= N * 1e-300) and the Lagrangian term nu q(x) it adds to
        the dual bound is below 1e-290, so the certificate stays valid."""
        idx = self.underflow
        if len(idx):
            z = idx[q[idx] == 0]
            if len(z):
                q[z] = np.minimum(self.hi[z], Q_FLOOR)
        return q

    def dual_bound(self, lam, q, t, a=None) -> float:
        """Weak-duality lower bound on V*:
        L(lam, nu) = sum lam (-H) + sum_x [-P_lam log q + nu q] - nu c, with c = `target` (1
        unless a floor or ceiling misses 1 by rounding).

        Valid for any lam in the simplex and any nu = 1/t >= 0 with q the box minimiser, so it
        certifies the primal value even when q's sum is off by rounding. With the floor pinned
        (t = 0) q = lo is the box minimiser for every large nu and sum lo = c: the nu term is 0.
        """
        a = self.mix(lam) if a is None else a
        if t == 0 and not self.floor_pinned:  # nu = inf: L(lam, nu) is -inf (or inf * 0)
            return -np.inf
        nu = 0.0 if t == 0 or math.isinf(t) else 1.0 / t
        log_q = self._log(q)
        if self._zero and np.any(a[q == 0] > 0):
            return np.inf  # -P_lam log q = +inf: q is no box minimiser
        return float(lam @ self.neg_entropy - a @ log_q + nu * (q.sum() - self.target))

    def bound_at_nu(self, lam, nu: float = 1.0) -> float:
        """L(lam, nu) at a fixed nu > 0 with its box minimiser clip(P_lam / nu, lo, hi): a finite
        weak-duality bound whenever every outcome the mixture sees has hi > 0 (finite KL), for
        a path that found no water level (PAPER.md section 2, the dual)."""
        a = self.mix(lam)
        q = np.clip(a / nu, self.lo, self.hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_q = np.log(q, out=np.zeros_like(q), where=q > 0)
        if np.any(a[q == 0] > 0):
            return -np.inf
        return float(lam @ self.neg_entropy - a @ log_q + nu * (q.sum() - self.target))

    def _log(self, q) -> np.ndarray:
        """`_safe_log(q)`, cached for the last q (the bound and the KL use the same model)."""
        if self._log_of is not q:  # and whether q has a zero (`_zero`)
            self._zero = not q.all()
            self._log_of, self._logq = q, _safe_log(q, self._zero)
        return self._logq

    def kl_per_domain(self, q) -> np.ndarray:
        """KL(P[k] || q) for every k: the dual gradient at lam (Danskin). One pass (a matvec);
        inf where q = 0 < P[k]."""
        out = self.neg_entropy - self.P @ self._log(q)
        return self._starved(q, out)

    def _starved(self, q, kl: np.ndarray) -> np.ndarray:
        """KL = inf for the domains with mass where q = 0."""
        self._log(q)  # sets `_zero` for this q (cached)
        if self._zero:
            kl[(self.P[:, np.flatnonzero(q == 0)] > 0).any(axis=1)] = np.inf
        return kl

    def hessian(self, lam, t) -> np.ndarray:
        """Hessian of D at lam (see `hessian_at`)."""
        return self.hessian_at(self.mix(lam), t)

    def hessian_at(self, a, t) -> np.ndarray:
        """Hessian of D given the mixture a = P_lam and the water level t, in one blocked pass:

            H = -sum_free P_k P_j / P_lam + F_k F_j / F,   F_k = sum_free P_k,  F = sum_free P_lam

        (free: lo < t P_lam < hi). NSD with H lam = 0 (PAPER.md section 2, the dual's curvature)."""
        p, n = self.P.shape
        if math.isinf(t):
            return np.zeros((p, p))
        r = a * t
        freef = ((r > self.lo) & (r < self.hi)).astype(np.float64)
        # 1[free] / P_lam: a > 0 where free, and the floor keeps 0 / 0 out elsewhere; M is
        # (P w) @ P' (a GEMM against the transposed view: ~25% faster than A A' with
        # A = P sqrt(w) at p = 8, N = 1e3, and the same overflow: P_k P_j w both ways)
        w = freef / np.maximum(a, 1e-300)
        if a.min() < 1e-300 and (freef[a < 1e-300] > 0).any():  # a free P_lam below the
            w = np.divide(freef, a, out=np.zeros_like(a), where=freef > 0)  # floor: exact 1/a
        if n <= BLOCK:  # one block: no loop (small N, few us each)
            F, M = self.P @ freef, (self.P * w) @ self.P.T
        else:
            F, M = np.zeros(p), np.zeros((p, p))
            for b in _blocks(n):  # P's block is read from memory once
                Pb = self.P[:, b]
                F += Pb @ freef[b]
                M += (Pb * w[b]) @ Pb.T
        total = float(a @ freef)
        if total > 0:
            M -= F[:, None] * (F / total)
        return -M


class Point:
    """lam with its mixture a = lam @ P, water level t, model q, dual bound D(lam), and on
    demand KL(P[k] || q) (`g`) and the dual Hessian (`hessian`).

    On a large problem (`InnerProblem.fuse`) a point whose mixture is not given is evaluated in
    one pass over P (`fused.fused_point`: the water level bracketed around the last one, found by
    a breakpoint search) and q is built only when asked for; otherwise, or when that pass cannot
    settle the water level, the classic way (`InnerProblem.model_from`, `kl_per_domain`,
    `hessian_at`: up to three passes)."""

    def __init__(self, inner: InnerProblem, lam: np.ndarray, a=None, hessian: bool = True):
        self.inner, self.lam = inner, lam
        self._q = self._g = self._H = None
        fused = None
        if a is None and inner.first_a is not None and (lam == 1.0 / len(lam)).all():
            fused, a = inner.first, inner.first_a  # evaluated during the set-up's pass
        elif a is None and inner.fuse:
            fused, a = fused_point(inner, lam, inner.t, hessian=hessian)
            if fused is None:  # a bracket missed or too many exceptions: after two,
                inner.fuse_misses += 1  # this problem is evaluated the classic way
                inner.fuse = inner.fuse_misses < 2
        if fused is not None:
            inner.t = fused.t
            self.a, self.t, self._g, self.D, self._H = fused.a, fused.t, fused.g, fused.D, fused.H
        else:
            self.a = inner.mix(lam) if a is None else a
            self._q, self.t = inner.model_from(self.a)
            self.D = inner.dual_bound(lam, self._q, self.t, self.a)

    @property
    def q(self) -> np.ndarray:
        if self._q is None:
            self._q = self.inner.clip_model(self.a, self.t)
        return self._q

    @property
    def g(self) -> np.ndarray:
        if self._g is None:
            self._g = self.inner.kl_per_domain(self.q)
        return self._g

    def hessian(self) -> np.ndarray:
        if self._H is None:
            self._H = self.inner.hessian_at(self.a, self.t)
        return self._H


def simplex_qp(Q: np.ndarray, c: np.ndarray, y0: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """Exactly minimise 0.5 y'Qy - c'y over the simplex (Q positive definite), primal active set.

    Nocedal & Wright, Algorithm 16.3, started from the feasible point y0.
    """
    p = len(c)
    if (y0 > 0).all():
        # Fast path: the minimiser on the affine hull {sum y = 1} is often already >= 0 (then
        # it is the answer: the constraints y >= 0 are inactive and the problem is convex).
        K = np.ones((p + 1, p + 1))
        K[:p, :p], K[p, p] = Q, 0.0
        # LAPACK gesv directly: numpy.linalg.solve's checks cost ~4x the 9 x 9 solve itself
        _, _, sol, info = _gesv(K, np.append(c, 1.0))
        if info == 0 and sol[:p].min() >= 0 and sol.max() < np.inf:  # False on NaN
            return sol[:p]
    y = y0.copy()
    W = y <= 0
    y[W] = 0.0
    for _ in range(max_iter):
        F = ~W
        nF = int(F.sum())
        K = np.zeros((nF + 1, nF + 1))
        K[:nF, :nF] = Q[np.ix_(F, F)]
        K[:nF, nF] = 1.0
        K[nF, :nF] = 1.0
        rhs = np.concatenate([c[F], [1.0]])
        sol = np.linalg.solve(K, rhs)
        yF, mu = sol[:nF], sol[nF]
        step = np.zeros(p)
        step[F] = yF - y[F]
        if np.max(np.abs(step)) <= 1e-15:
            s = Q @ y - c + mu  # multipliers of y_i >= 0 for i in W
            s[F] = 0.0
            if np.all(s >= -1e-14) or not W.any():
                return y
            W[int(np.argmin(np.where(W, s, np.inf)))] = False
            continue
        alpha, block = 1.0, -1
        for i in np.flatnonzero(F & (step < 0)):
            ratio = -y[i] / step[i]
            if ratio < alpha:
                alpha, block = ratio, i
        y = y + alpha * step
        if block >= 0:
            y[block] = 0.0
            W[block] = True
    return y


def _newton(
    inner: InnerProblem, p: int, tol, lam0=None, budget: Budget | None = None
) -> NewtonResult:
    """Projected Newton ascent on D over the simplex (from ``lam0``, default uniform), within
    ``budget`` (iterations and time).

    Passes over P per iteration, classic points: one for the Hessian (`InnerProblem.hessian_at`,
    only when the gap asks for another step), one for P_y = y @ P at the quadratic model's
    optimum y and a matvec for KL(P[k] || q) there; on a large problem one pass in all
    (`Point`), the Hessian accumulated only while the gap is not yet near convergence. Each
    shorter step of the line search evaluates its own point, so the returned bound is D at the
    returned lam.
    """
    lam = np.full(p, 1.0 / p) if lam0 is None else np.asarray(lam0, dtype=np.float64)
    pt = inner.point(lam)
    budget = budget or Budget()
    it, best, since, stopped = 0, np.inf, 0, "iterations"
    for _ in range(budget.max_iter):
        it += 1
        g_max = pt.g.max()
        gap = g_max - pt.D
        if gap <= tol(g_max):
            stopped = "converged"
            break
        best, since = (gap, 0) if gap < 0.5 * best else (best, since + 1)
        if since > STALL:  # no halving of the gap in STALL steps: leave it to another path
            stopped = "stalled"
            break
        if budget.expired():
            stopped = "time"
            break
        g_step = _finite_gradient(pt.g)  # KL = inf off the current face: derivative +inf
        H = pt.hessian()  # only when the gap asks for another step
        if not math.isfinite(H.sum()):  # an inf or NaN entry (or entries near 1e308)
            # a weight ~1e-300 under a domain's mass: curvature overflows float64 and the
            # quadratic model is undefined; the entropic path (log-weights) takes over
            stopped = "stalled"
            break
        Q = H + H.T
        Q *= -0.5
        dq = np.einsum("ii->i", Q)  # a writable view of the diagonal
        dq += 1e-12 * np.maximum(1.0, dq)
        y = simplex_qp(Q, Q @ pt.lam + g_step, pt.lam)
        y /= y.sum()
        # quadratic convergence: a gap of 1e-7 leaves ~1e-14 after the step, and the Hessian
        # the next point would accumulate is not needed (computed when asked for after all)
        nxt = _line_search(inner, pt, y, g_step, gap, hessian=100.0 * gap * gap > tol(g_max))
        if nxt is None:
            stopped = "stalled"
            break
        pt = nxt
    return NewtonResult(pt.lam, pt.q, pt.t, pt.g, pt.D, it, stopped)


def _line_search(
    inner: InnerProblem, pt: Point, y, g_step, gap0: float, hessian: bool = True
) -> Point | None:
    """The point of `_newton`'s step from pt towards y, halving from the full step: Armijo on D,
    or, where D is flat to rounding near the optimum (its error is second order in lam while the
    gap is first order), a smaller gap. None when no step of at least 1e-14 is accepted."""
    lam, D0, step = pt.lam, pt.D, 1.0
    d = y - lam
    slope = g_step @ d  # may round to <= 0 when d is tiny; then only the gap test applies
    flat = 1e-13 * (1.0 + abs(D0))
    while step > 1e-14:
        # the mixture is always lam_try @ P, so D is the dual bound at lam_try itself
        # (`exact._run` reports it). Interpolating (1 - s) P_lam + s P_y drifted from it by
        # 1e14 x where lam had weights of 1e-120 (fuzz seed 0 #40611: D 2.7e16 vs V* 140).
        if step == 1.0:
            lam_try = y
        else:
            lam_try = np.maximum(lam + step * d, 0.0)
            lam_try /= lam_try.sum()
        trial = inner.point(lam_try, hessian=hessian)
        if slope > 0 and trial.D - D0 >= 1e-4 * step * slope:
            return trial
        if trial.D >= D0 - flat and trial.g.max() - trial.D < gap0:
            return trial
        step *= 0.5
    return None


def _finite_gradient(g: np.ndarray) -> np.ndarray:
    """KL = inf for a domain the current mixture starves: its derivative is +inf; a large finite
    stand-in keeps the Newton model defined and points the step towards that domain."""
    if math.isfinite(g.sum()):  # KL >= 0: the sum is finite iff every entry is
        return g
    finite = np.isfinite(g)
    top = g[finite].max() if finite.any() else 0.0
    return np.where(finite, g, top + 10.0 * (1.0 + abs(top)))


def _at_theta(inner: InnerProblem, th: np.ndarray):
    """lam = softmax(theta), log-weights floored 700 below the largest (every lam_k > 0), with
    the inner model q(lam), t and the dual bound D(lam) there (PAPER.md section 2).

    Returns ``(theta, lam, q, t, D)``, theta as floored.
    """
    th = np.maximum(th, th.max() - 700.0)
    lam = np.exp(th - th.max())
    lam /= lam.sum()
    q, t = inner.model(lam)
    return th, lam, q, t, inner.dual_bound(lam, q, t)


class _ThetaPoint(NamedTuple):
    """An accepted entropic Newton point: log-weights, lam, q(lam), t, D(lam), KL(P[k] || q)."""

    theta: np.ndarray
    lam: np.ndarray
    q: np.ndarray
    t: float
    D: float
    g: np.ndarray


def _entropic_step(inner: InnerProblem, theta, lam, t, g, bound, mu: float, min_gap: float):
    """One Levenberg-Marquardt damped Newton step of `_entropic_newton` in theta; returns
    (the accepted `_ThetaPoint` or None when no damping helps, the new damping mu)."""
    p = len(lam)
    g_step = _finite_gradient(g)
    dev = g_step - lam @ g_step
    H = inner.hessian(lam, t)
    r = np.sqrt(lam)
    JHJ_scaled = H * r[:, None] * r[None, :]  # S H S, S = diag(sqrt lam)
    # S^-1 J H J S^-1 = (I - r r') S H S (I - r r')
    proj = np.eye(p) - np.outer(r, r)
    A = -(proj @ JHJ_scaled @ proj)
    A = 0.5 * (A + A.T)
    D0, flat, gap0 = bound, 1e-13 * (1.0 + abs(bound)), g.max() - bound
    for _ in range(60):
        y = np.linalg.solve(A + mu * np.eye(p), r * dev)
        # step in theta, clipped per coordinate (a box trust region): a domain driven
        # towards 0 with a huge step must not shrink the steps of the others
        d = np.clip(y / r, -THETA_STEP, THETA_STEP)
        step = 1.0
        slope = (lam * dev) @ d
        while step > 1e-10:
            th, lam_try, q_try, t_try, D_try = _at_theta(inner, theta + step * d)
            if np.isfinite(D_try) and D_try >= D0 - flat:
                # the gap decides (D alone is flat to rounding along degenerate directions,
                # where Armijo steps on D wander off and starve active domains); an Armijo
                # step on D may raise the gap to at most ARMIJO_GAP_GROWTH x the least so far
                g_try = inner.kl_per_domain(q_try)
                gap_try = g_try.max() - D_try
                if gap_try < gap0 or (
                    slope > 0
                    and D_try - D0 >= 1e-4 * step * slope
                    and gap_try <= ARMIJO_GAP_GROWTH * min_gap
                ):
                    mu = max(
                        mu * (0.25 if step == 1.0 else 1.0 if step >= 0.25 else 1.0 / step), 1e-12
                    )
                    return _ThetaPoint(th, lam_try, q_try, t_try, D_try, g_try), mu
            step *= 0.5
        mu *= 16.0
        if mu > 1e12:
            break
    return None, mu


def _entropic_newton(
    inner: InnerProblem,
    p: int,
    tol: float,
    lam0=None,
    budget: Budget | None = None,
    info: dict | None = None,
) -> NewtonResult:
    """Newton ascent on D in log coordinates lam = softmax(theta), Levenberg-Marquardt damped.

    The projected Newton method in lam stalls where D behaves like -lam log lam near a face of the
    simplex: a domain whose mixture weight should be ~1e-7 sees a curvature ~1/P_lam(x) ~ 1e35 at
    the vertex and cannot leave it. In theta the same term has curvature ~lam, so steps are
    O(1) in log-weight. With f(theta) = D(softmax(theta)), J = diag(lam) - lam lam':

        grad f = J g = lam * (g - lam.g),     model matrix  M = -J H J + mu diag(lam)

    (H the dual Hessian of `InnerProblem.hessian`; mu diag(lam) makes M positive definite and gives
    domains with KL below the mean steps (g_k - lam.g) / mu that drive lam_k towards 0
    geometrically).
    Every lam stays positive (log-weights are floored 700 below the largest), so no domain is
    starved for ever. Returns a `NewtonResult` like `_newton`; ``info["lam_pair"]``
    (when ``info`` is given) is the lam of the iterate with the smallest gap of its own, where
    q(lam) is nearly optimal too (the best bound's lam may carry a poor q(lam)).
    """
    lam = np.full(p, 1.0 / p) if lam0 is None else 0.5 * np.asarray(lam0, float) + 0.5 / p
    theta = np.log(lam)
    q, t = inner.model(lam)
    g = inner.kl_per_domain(q)
    bound = inner.dual_bound(lam, q, t)
    budget = budget or Budget()
    mu, it, best, since, stopped = 1.0, 0, np.inf, 0, "iterations"
    best_primal, best_bound = (g.max(), q, g), (bound, lam, t)
    min_gap, lam_pair = np.inf, lam
    for _ in range(budget.max_iter):
        it += 1
        gap0 = g.max() - bound
        if gap0 < min_gap:
            lam_pair = lam
        min_gap = min(min_gap, gap0)  # Armijo steps may not drift the gap up for ever
        if best_primal[0] - best_bound[0] <= tol(best_primal[0]):
            stopped = "converged"
            break
        best, since = (gap0, 0) if gap0 < 0.5 * best else (best, since + 1)
        if since > 2 * STALL:
            stopped = "stalled"
            break
        if budget.expired():
            stopped = "time"
            break
        point, mu = _entropic_step(inner, theta, lam, t, g, bound, mu, min_gap)
        if point is None:
            stopped = "stalled"
            break
        theta, lam, q, t, bound, g = point
        if g.max() < best_primal[0]:
            best_primal = (g.max(), q, g)
        if bound > best_bound[0]:
            best_bound = (bound, lam, t)
    if info is not None:
        info["lam_pair"] = lam_pair if g.max() - bound >= min_gap else lam
    # the best model and the best bound met on the way certify together (see exact._run)
    return NewtonResult(
        best_bound[1], best_primal[1], best_bound[2], best_primal[2], best_bound[0], it, stopped
    )


def _kkt_newton(
    inner: InnerProblem, p: int, tol, lam0=None, budget: Budget | None = None, max_iter: int = 60
) -> NewtonResult:
    """Newton on the KKT equalisation system in log-weights, minimum-norm steps.

    At a saddle point every domain with lam*_k > 0 has KL(P[k] || q(lam*)) = V* (complementary
    slackness; PAPER.md section 2). With lam = softmax(theta) the system

        g_k(theta) - tau = 0  (k = 1..p),   sum_k lam_k = 1,   g = KL(P[.] || q(lam)),

    has Jacobian [[H diag(lam), -1], [lam', 0]] (H the dual Hessian, `InnerProblem.hessian`).
    When lam* is not unique (two domains with the same P, a flat face of D) the Jacobian is
    singular; `numpy.linalg.lstsq` takes the minimum-norm step, which the projected and the damped
    entropic Newton methods do not. tau is the current max_k g_k, so a domain below it is pushed
    towards weight 0 geometrically (steps clipped to THETA_STEP per log-weight). A step is
    accepted (halving from 1) when the gap at the new point shrinks, or when it gives a better
    bound or a better model than any met so far; the best primal model and the best bound met
    are returned and certify together, like `_entropic_newton`.
    """
    lam = np.full(p, 1.0 / p) if lam0 is None else np.asarray(lam0, dtype=np.float64)
    lam = np.maximum(lam, 1e-300)
    lam = lam / lam.sum()
    q, t = inner.model(lam)
    g = inner.kl_per_domain(q)
    bound = inner.dual_bound(lam, q, t)
    best_primal, best_bound = (g.max(), q, g), (bound, lam, t)
    budget = budget or Budget()
    it, stopped = 0, "iterations"
    for _ in range(min(max_iter, budget.max_iter)):
        it += 1
        gap = g.max() - bound
        if best_primal[0] - best_bound[0] <= tol(best_primal[0]):
            stopped = "converged"
            break
        if budget.expired():
            stopped = "time"
            break
        g_step = _finite_gradient(g)
        J = np.zeros((p + 1, p + 1))
        J[:p, :p] = inner.hessian(lam, t) * lam[None, :]  # d g / d theta
        if not np.isfinite(J).all():  # curvature overflowed float64 (see `_newton`)
            stopped = "stalled"
            break
        J[:p, p], J[p, :p] = -1.0, lam
        F = np.append(g_step - g_step.max(), 0.0)
        d = np.clip(np.linalg.lstsq(J, -F, rcond=None)[0][:p], -THETA_STEP, THETA_STEP)
        theta, step, accepted = np.log(lam), 1.0, False
        while step > 1e-10:
            _, lam_try, q_try, t_try, D_try = _at_theta(inner, theta + step * d)
            if np.isfinite(D_try):
                g_try = inner.kl_per_domain(q_try)
                # progress is a smaller gap here, or a new best bound or best model: the two
                # certify together, and on a kinked face they come from different iterates
                if (
                    g_try.max() - D_try < gap
                    or D_try > best_bound[0]
                    or g_try.max() < best_primal[0]
                ):
                    accepted = True
                    break
            step *= 0.5
        if not accepted:
            stopped = "stalled"
            break
        lam, q, t, g, bound = lam_try, q_try, t_try, g_try, D_try
        if g.max() < best_primal[0]:
            best_primal = (g.max(), q, g)
        if bound > best_bound[0]:
            best_bound = (bound, lam, t)
    return NewtonResult(
        best_bound[1], best_primal[1], best_bound[2], best_primal[2], best_bound[0], it, stopped
    )


def fixed_mixture(inner: InnerProblem, lam) -> NewtonResult:
    """The fixed-mixture gate in closed form: q = clip(t P_lam, lo, hi), sum q = 1 (PAPER.md
    section 2), with KL(P[k] || q) and the dual bound at lam."""
    lam = np.asarray(lam, dtype=np.float64)
    q, t = inner.model(lam)
    return NewtonResult(
        lam, q, t, inner.kl_per_domain(q), inner.dual_bound(lam, q, t), 0, "converged"
    )


def entropic_path(
    inner: InnerProblem, p: int, stop, lam0=None, budget: Budget | None = None
) -> NewtonResult:
    """Newton in log-weights (`_entropic_newton`), then, while the gap exceeds ``stop``, the
    equalisation of the active domains from its best single iterate (`equalise`, which keeps the
    best model and bound met so far), projected Newton on the face it found (quadratic there) and
    the KKT polish from that iterate; the result with the smallest gap of its own is returned."""

    info: dict = {}
    res = _entropic_newton(inner, p, stop, lam0=lam0, budget=budget, info=info)
    it = res.iterations
    for polish in ("equalise", "newton", "kkt"):
        if res.gap <= stop(res.g.max()) or (budget is not None and budget.expired()):
            break
        if polish == "equalise":
            more = equalise(inner, info["lam_pair"], stop, seed=res, budget=budget)
        elif polish == "newton":
            more = _newton(inner, p, stop, lam0=res.lam, budget=budget)
        else:
            more = _kkt_newton(inner, p, stop, lam0=info["lam_pair"], budget=budget)
        it += more.iterations
        if more.gap < res.gap:
            res = more
    return res._replace(iterations=it)


def newton_path(
    inner: InnerProblem, p: int, stop, lam0=None, budget: Budget | None = None
) -> NewtonResult:
    """Projected Newton (`_newton`) from ``lam0`` (default uniform)."""
    return _newton(
        inner, p, stop, lam0=None if lam0 is None else np.asarray(lam0, float), budget=budget
    )


def kkt_path(
    inner: InnerProblem, p: int, stop, lam0=None, budget: Budget | None = None
) -> NewtonResult:
    """Minimum-norm Newton on the KKT equalisation (`_kkt_newton`) from ``lam0``."""
    return _kkt_newton(inner, p, stop, lam0=lam0, budget=budget)


PATHS = {"newton": newton_path, "entropic": entropic_path, "kkt": kkt_path}


def solve_waterfill(
    problem: DiscreteProblem,
    support: str = "domains",
    tol=GAP_TOL,
    lam_fixed=None,
    inner: InnerProblem | None = None,
    path: str = "newton",
    lam0=None,
    budget: Budget | None = None,
) -> dict:
    """Minimax gate by water-filling + Newton; or, with ``lam_fixed``, the fixed-mixture gate.

    ``path``: "newton" (projected Newton in lam, from the uniform mixture), "entropic" (Newton in
    log-weights, `entropic_path`, from ``lam0`` mixed with the uniform mixture) or "kkt"
    (minimum-norm Newton on the KKT equalisation, `_kkt_newton`, from ``lam0``). ``tol``: the gap
    at which to stop, a number or a function of the primal value. Returns a dict with q (on the
    support), lam, per-domain KL, the dual bound, iterations and why the path stopped;
    `modgen_bench.exact.solve` grades such answers with the certificate.
    """
    inner = inner or InnerProblem(problem, support)
    stop = tol if callable(tol) else (lambda value, tol=tol: tol)
    if lam_fixed is None and path not in PATHS:
        raise ValueError(f"unknown waterfill path '{path}'; choose one of {', '.join(PATHS)}")
    # one errstate for the whole solve (a context per Newton step cost ~5% at N = 1e3): the
    # curvature may overflow where a weight ~1e-300 sits under a domain's mass; every path
    # checks the Hessian for inf/NaN and hands over to another path
    with np.errstate(over="ignore", invalid="ignore"):
        res = (
            fixed_mixture(inner, lam_fixed)
            if lam_fixed is not None
            else PATHS[path](inner, problem.p, stop, lam0=lam0, budget=budget)
        )
    return {
        "q": res.q,
        "lam": res.lam,
        "per_domain_kl": res.g,
        "bound": res.bound,
        "iterations": res.iterations,
        "stopped": res.stopped,
        "mask": inner.mask,
    }
