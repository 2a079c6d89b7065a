"""One pass over P per Newton point on large problems: mixture, water level, KL, D and Hessian.

At a new lam the classic evaluation (`waterfill.InnerProblem`) reads P three times: the mixture
P_lam = lam @ P; then, once the water level t (a global quantity) is known, KL(P[k] || q) =
-H(P[k]) - P[k] . log q and the dual Hessian. Here t is bracketed before the pass, [t / RHO,
t * RHO] around the last water level (PAPER.md section 2: q = clip(t P_lam, lo, hi)), and every
outcome of a block, while the block is in cache, is

- clipped at lo for every t of the bracket (t_U P_lam <= lo), or at hi (t_L P_lam >= hi): its q
  is known, and its terms of sum q, P[k] . log q and P_lam . log q are constants;
- free for every t of the bracket: q = t P_lam, log q = log t + log P_lam, so its terms are
  affine in t or log t, and it enters the Hessian (`InnerProblem.hessian_at`);
- ambiguous (a breakpoint lo / P_lam or hi / P_lam inside the bracket): kept, with its column
  of P.

After the pass, `breakpoint_root` finds the exact root t of the piecewise-linear sum over the
few ambiguous outcomes (continuous-knapsack style: sorted breakpoints, prefix sums), and their
terms are added. A root outside the bracket, too many ambiguous outcomes, or a model below
TINY where a domain has mass (the classic path's underflow floor applies there) gives None:
the caller evaluates the point the classic way. The answers are graded by the same
certificate as every other path (`exact._run`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "FusedPoint",
    "breakpoint_root",
    "fused_point",
    "open_pass",
    "settle",
    "block_step",
    "RHO",
    "FUSED_BLOCK",
]

#: The bracket around the last water level: [t / RHO, t * RHO].
RHO = 1.02
#: Entries of P per block of the fused pass (p x columns): the block and its few temporaries
#: stay in cache (L2/L3) while every quantity of the block is accumulated; half this size paid
#: ~2 us of numpy call overhead per operation on twice as many blocks.
FUSED_BLOCK = 1 << 16
#: Largest share of exceptions (outcomes clipped somewhere in the bracket) kept before the pass
#: gives up (their columns of P are copied).
MAX_EXCEPTIONS = 1 / 16
#: A model value or mixture below this where a domain has mass is left to the classic path
#: (its underflow floor and starved-domain rules).
TINY = 1e-290


class FusedPoint(NamedTuple):
    """The Newton point at lam: mixture a, water level t, KL(P[k] || q) g, the dual bound D and
    the dual Hessian H; the model q = clip(t a, lo, hi) is built on demand (`model`)."""

    lam: np.ndarray
    a: np.ndarray
    t: float
    g: np.ndarray
    D: float
    H: np.ndarray


class _Sums:
    """What one pass accumulates over the outcomes free for every t of the bracket (sums of P[k],
    P_lam, P[k] log P_lam, P_lam log P_lam and P_k P_j / P_lam), and the other outcomes (the
    exceptions: clipped at some t of the bracket) with their columns of P, for `_settle`."""

    def __init__(self, p: int, t_lo: float, t_hi: float, cap: float, hessian: bool = True):
        self.t_lo, self.t_hi, self.cap, self.hessian = t_lo, t_hi, cap, hessian
        # one accumulator for one GEMM per block: [P / P_lam (with the Hessian); log P_lam; 1]
        # against P (`add`); M, K and F are its rows
        h = p if hessian else 0
        self._acc = np.zeros((h + 2, p))
        self.M = self._acc[:h]  # sum_free P_k P_j / P_lam (no rows without the Hessian)
        self.K = self._acc[h]  # sum_free P[k] log P_lam
        self.F = self._acc[h + 1]  # sum_free P[k]
        self.idx, self.cols, self.count = [], [], 0
        self._z = self._r = self._out = None

    def add(self, Pb, ab, lob, hib, b0: int) -> bool:
        """Accumulate one block (columns b0.. of P, its mixture ab and box lob, hib); False when
        the exceptions exceed the cap (the pass gives up). Call under errstate(divide, invalid
        ignored): an exception's P_lam may be 0."""
        Z, r, out = self._buffers(len(ab))
        np.less_equal(np.multiply(ab, self.t_lo, out=r), lob, out=out)  # not above the floor
        out |= np.multiply(ab, self.t_hi, out=r) >= hib  # or not below the ceiling, in the bracket
        h = len(Z) - 2  # rows of P / P_lam: p, or 0 without the Hessian
        np.log(ab, out=Z[h])
        if h:
            # P / P_lam as P * (1 / P_lam): one divide per outcome instead of p; where some
            # P_lam is below 1e-300 its reciprocal may overflow, so there the exact quotient
            if ab.min() > 1e-300:
                np.multiply(Pb, np.divide(1.0, ab, out=r), out=Z[:h])
            else:
                np.divide(Pb, ab, out=Z[:h])
        e = np.flatnonzero(out)
        if len(e):
            self.count += len(e)
            if self.count > self.cap:
                return False
            self.idx.append(e + b0)
            self.cols.append(Pb[:, e])
            Z[:, e] = 0.0
        self._acc += Z @ Pb.T
        if len(e):
            Z[h + 1, e] = 1.0
        return True

    def _buffers(self, m: int):
        """The block's rows Z (the last one all ones but at exceptions), a float and a bool
        scratch vector, for m columns: allocated once per pass."""
        if self._z is None or self._z.shape[1] < m:
            self._z = np.ones((len(self._acc), m))
            self._r, self._out = np.empty(m), np.empty(m, dtype=bool)
        return self._z[:, :m], self._r[:m], self._out[:m]


def breakpoint_root(
    base: float, slope: float, a, lo, hi, c: float, t_lo: float, t_hi: float
) -> float | None:
    """The t in [t_lo, t_hi] with S(t) = base + slope t + sum_i clip(t a_i, lo_i, hi_i) = c.

    S is piecewise linear and non-decreasing in t with kinks at lo_i / a_i and hi_i / a_i
    (continuous-knapsack breakpoints): a binary search over the sorted kinks inside the bracket
    finds the piece holding c (S evaluated directly at each probe, O(m log m) for m terms, so
    no cancellation between prefix sums at t up to 1e300), and on that piece, where every term
    is free or pinned, t = (c - base - pinned) / (slope + sum of the free a_i). None when c lies
    outside [S(t_lo), S(t_hi)] or S is flat there at another value."""
    a, lo, hi = (np.asarray(v, dtype=np.float64) for v in (a, lo, hi))
    moving = (a > 0) & (lo < hi)
    base = base + float(lo[~moving].sum())  # constant terms: clip(t * 0, lo, hi) = lo
    a, lo, hi = a[moving], lo[moving], hi[moving]

    def S(t: float) -> float:
        return base + slope * t + float(np.minimum(np.maximum(a * t, lo), hi).sum())

    kinks = np.concatenate([lo / a, hi / a])
    knots = np.concatenate([[t_lo], np.sort(kinks[(kinks > t_lo) & (kinks < t_hi)]), [t_hi]])
    if not S(t_lo) <= c <= S(t_hi):
        return None
    i, j = 0, len(knots) - 1  # S(knots[i]) <= c <= S(knots[j])
    while j - i > 1:
        m = (i + j) // 2
        if S(knots[m]) <= c:
            i = m
        else:
            j = m
    t0, t1 = knots[i], knots[j]
    r = a * (0.5 * (t0 + t1))
    free = (r > lo) & (r < hi)  # the piece's free terms; the rest pinned
    pinned = float(np.where(r <= lo, lo, hi)[~free].sum())
    rate = slope + float(a[free].sum())
    if rate <= 0:
        return float(t0)  # S is flat at c on the piece
    return float(min(max((c - base - pinned) / rate, t0), t1))


def open_pass(p: int, n: int, t0: float, rho: float = RHO, hessian: bool = True) -> _Sums | None:
    """The accumulators of a pass with the water level bracketed in [t0 / rho, t0 * rho]
    (None when that bracket is not finite and positive); ``hessian``: accumulate the Hessian."""
    t_lo, t_hi = t0 / rho, t0 * rho
    if not (0 < t_lo and math.isfinite(t_hi)):
        return None
    return _Sums(p, t_lo, t_hi, MAX_EXCEPTIONS * n, hessian)


def block_step(p: int) -> int:
    """Columns per block of a fused pass (FUSED_BLOCK entries of P)."""
    return max(FUSED_BLOCK // p, 256)


def fused_point(
    inner, lam: np.ndarray, t0: float, rho: float = RHO, hessian: bool = True
) -> tuple[FusedPoint | None, np.ndarray | None]:
    """The Newton point at lam in one pass over P (module docstring), with the water level
    bracketed in [t0 / rho, t0 * rho], and the mixture lam @ P. The point is None when the
    pass cannot settle it (the caller evaluates lam the classic way, from the mixture when it
    is not None either). ``inner``: a `waterfill.InnerProblem`."""
    P, lo, hi = inner.P, inner.lo, inner.hi
    p, n = P.shape
    sums = open_pass(p, n, t0, rho, hessian)
    if sums is None:
        return None, None
    lam = np.asarray(lam, dtype=np.float64)
    a, step = np.empty(n), block_step(p)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for b0 in range(0, n, step):
            b = slice(b0, min(b0 + step, n))
            Pb = P[:, b]
            if not sums.add(Pb, np.matmul(lam, Pb, out=a[b]), lo[b], hi[b], b0):
                return None, None
    return settle(inner, lam, a, sums), a


def settle(inner, lam, a, sums: _Sums) -> FusedPoint | None:
    """The water level from a pass's sums and its exceptions (`breakpoint_root`), then KL,
    D(lam) and the Hessian at it; None when the root lies outside the bracket, a model value
    below TINY sits where a domain has mass, or the curvature overflowed."""
    p = len(lam)
    if sums.idx:
        idx = np.concatenate(sums.idx)
        Pm = np.concatenate(sums.cols, axis=1)
    else:
        idx, Pm = np.empty(0, dtype=np.intp), np.empty((p, 0))
    a_m, lo_m, hi_m = a[idx], inner.lo[idx], inner.hi[idx]
    A, B = float(lam @ sums.F), float(lam @ sums.K)  # sum_free P_lam, sum_free P_lam log P_lam
    t = breakpoint_root(0.0, A, a_m, lo_m, hi_m, inner.target, sums.t_lo, sums.t_hi)
    if t is None or not (t > 0 and np.isfinite(sums.M).all()):
        return None
    r_m = a_m * t
    q_m = np.minimum(np.maximum(r_m, lo_m), hi_m)
    if ((q_m < TINY) & inner.seen_n[idx]).any():
        return None
    L_m = np.log(np.maximum(q_m, TINY))
    log_t = math.log(t)
    g = inner.neg_entropy - (sums.K + log_t * sums.F + Pm @ L_m)
    cross = B + log_t * A + float(a_m @ L_m)  # P_lam . log q
    total_q = t * A + float(q_m.sum())
    D = float(lam @ inner.neg_entropy - cross + (total_q - inner.target) / t)
    H = None
    if sums.hessian:
        free_m = (r_m > lo_m) & (r_m < hi_m)
        w_m = np.where(free_m, 1.0 / np.where(free_m, a_m, 1.0), 0.0)
        F = sums.F + Pm @ free_m.astype(np.float64)
        A += float(a_m @ free_m)
        M = sums.M + (Pm * w_m) @ Pm.T
        if A > 0:
            M -= F[:, None] * (F / A)
        H = -M
    return FusedPoint(lam, a, t, g, D, H)
