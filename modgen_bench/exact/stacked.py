"""`solve_batch`: many small problems of one shape solved together, vectorised over the batch.

The theory checks and the fuzz solve thousands of problems with p <= 16, N <= 200, where one
`solve` costs ~0.3-1 ms of Python overhead for a few microseconds of arithmetic. Here the
projected Newton method of `waterfill._newton` runs on a stack (B, p, N) at once: the water level
by a vectorised safeguarded Newton on t, the dual Hessian by one einsum, the simplex-constrained
Newton step by a batched KKT solve (the affine-hull minimiser, kept when it is >= 0; otherwise
`waterfill.simplex_qp` for that problem alone), and a batched line search that halves each
problem's own step. Every problem is graded by the same certificate as `solve` (primal
max_k KL(P[k] || q) of a q in the feasible set minus D(lam) at q(lam) from lam @ P); a problem
that does not certify in the batch, or that the batch does not cover (an infeasible or one-point
set, a ceiling the mixture cannot reach, masses that underflow), is passed to `solve`, so the
answers and their certificates are those of `solve` (PAPER.md section 2).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..gates import gate_from_model
from ..threads import blas_threads
from . import RTOL, TOL, solve, tolerance
from .solution import Solution
from .waterfill import SUM_ULPS, simplex_qp

__all__ = ["solve_batch", "solve_many"]

MAX_ITER = 60
#: the smallest mass the batch handles; below it (underflow territory) `solve` takes the problem
SMALLEST = 1e-150


class _Stack:
    """The batch's fixed data: P (B, p, N), lo and hi (B, N), -H(P[k]) (B, p)."""

    def __init__(self, P: np.ndarray, lo: np.ndarray, hi: np.ndarray, seen: np.ndarray):
        self.P, self.lo, self.hi, self.seen = P, lo, hi, seen
        # P log P with 0 log 0 = 0: entries below 1e-300 contribute < 1e-297 either way
        logP = np.log(np.maximum(P, 1e-300))
        self.neg_entropy = np.einsum("bkn,bkn->bk", P, logP)

    def level(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q = clip(t a, lo, hi) with sum q = 1 for every row of a (B, N): vectorised safeguarded
        Newton on the piecewise-linear sum (as `InnerProblem.model_from`); returns (q, t)."""
        B = a.shape[0]
        t, t_lo, t_hi = np.ones(B), np.zeros(B), np.full(B, np.inf)
        q = np.empty_like(a)
        for _ in range(200):
            r = a * t[:, None]
            q = np.minimum(np.maximum(r, self.lo), self.hi)
            s = q.sum(axis=1)
            done = np.abs(s - 1.0) <= SUM_ULPS
            if done.all():
                break
            t_lo = np.where(s < 1.0, t, t_lo)
            t_hi = np.where(s > 1.0, t, t_hi)
            free = q == r
            F = np.where(free, a, 0.0).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                t_new = t + (1.0 - s) / F
            bad = ~((t_lo < t_new) & (t_new < t_hi))
            geo = np.where(
                np.isinf(t_hi), 16.0 * t, np.where(t_lo == 0, t_hi / 16.0, np.sqrt(t_lo * t_hi))
            )
            t = np.where(done, t, np.where(bad, geo, t_new))
        return q, t

    def grade(self, lam, a, q, t):
        """(g = KL(P[k] || q) (B, p), D(lam) (B,)) at the water level t (PAPER.md section 2);
        g = inf for a problem whose q is 0 where a domain has mass (off the support q = 0 and
        P = 0: no term)."""
        pos = q > 0
        log_q = np.log(np.where(pos, q, 1.0))
        g = self.neg_entropy - np.matmul(self.P, log_q[:, :, None])[:, :, 0]
        g[(~pos & self.seen).any(axis=1)] = np.inf
        D = (
            np.einsum("bk,bk->b", lam, self.neg_entropy)
            - np.einsum("bn,bn->b", a, log_q)
            + (q.sum(axis=1) - 1.0) / t
        )
        return g, D

    def hessian(self, a, t) -> np.ndarray:
        """The dual Hessian of `InnerProblem.hessian_at` for every problem: (B, p, p)."""
        r = a * t[:, None]
        free = ((r > self.lo) & (r < self.hi)).astype(np.float64)
        w = free / np.maximum(a, 1e-300)
        M = np.matmul(self.P * w[:, None, :], self.P.transpose(0, 2, 1))
        F = np.matmul(self.P, free[:, :, None])[:, :, 0]
        total = np.einsum("bn,bn->b", a, free)
        with np.errstate(divide="ignore", invalid="ignore"):
            M -= np.where(
                total[:, None, None] > 0, F[:, :, None] * F[:, None, :] / total[:, None, None], 0.0
            )
        return -M


def _kkt(Q, c, W) -> tuple[np.ndarray, np.ndarray]:
    """(y, mu) solving Q y + mu 1 = c on the free coordinates, y = 0 on W, sum y = 1, for every
    problem (one batched solve; NaN rows where a system is singular)."""
    B, p = c.shape
    K = np.ones((B, p + 1, p + 1))
    K[:, :p, :p], K[:, p, p] = Q, 0.0
    rhs = np.concatenate([c, np.ones((B, 1))], axis=1)
    b_idx, i_idx = np.nonzero(W)
    K[b_idx, i_idx, :] = 0.0
    K[b_idx, i_idx, i_idx] = 1.0
    rhs[b_idx, i_idx] = 0.0
    try:
        sol = np.linalg.solve(K, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        sol = np.full((B, p + 1), np.nan)
    return sol[:, :p], sol[:, p]


def _qp_steps(Q: np.ndarray, c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """argmin_y 0.5 y'Qy - c'y over the simplex for every problem (Q positive definite): a
    batched primal active-set method (coordinates that go negative are fixed at 0 and the KKT
    system solved again, Nocedal & Wright 16.3 without its ratio test), accepted where the
    multipliers of the fixed coordinates are >= 0; `simplex_qp` for a problem where not."""
    B, p = c.shape
    W = np.zeros((B, p), dtype=bool)
    y, mu = _kkt(Q, c, W)
    todo = np.flatnonzero((y < 0).any(axis=1))
    for _ in range(p):  # only the problems whose last solve had a negative entry
        if not len(todo):
            break
        W[todo] |= y[todo] < 0
        y[todo], mu[todo] = _kkt(Q[todo], c[todo], W[todo])
        todo = todo[(y[todo] < 0).any(axis=1)]
    s = np.einsum("bkj,bj->bk", Q, y) - c + mu[:, None]  # multipliers of y >= 0
    ok = (
        np.isfinite(y).all(axis=1)
        & (y.min(axis=1) >= 0)
        & (np.where(W, s, 0.0) >= -1e-14).all(axis=1)
    )
    for b in np.flatnonzero(~ok):
        y[b] = simplex_qp(Q[b], c[b], lam[b])
    return y / y.sum(axis=1, keepdims=True)


class _State:
    """lam, the mixture a = lam @ P, the water level (q, t), KL g and D(lam) of every problem."""

    def __init__(self, st: _Stack, lam: np.ndarray):
        self.lam = lam
        self.a = np.einsum("bk,bkn->bn", lam, st.P)
        self.q, self.t = st.level(self.a)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.g, self.D = st.grade(lam, self.a, self.q, self.t)

    def take(self, other: "_State", rows: np.ndarray) -> None:
        for name in ("lam", "a", "q", "t", "g", "D"):
            getattr(self, name)[rows] = getattr(other, name)[rows]

    def gap(self) -> np.ndarray:
        return self.g.max(axis=1) - self.D


def _line_search(
    st: _Stack, s: _State, y: np.ndarray, live: np.ndarray, slope: np.ndarray
) -> np.ndarray:
    """Move every live problem towards its Newton point y: Armijo on D, or a smaller gap where D
    is flat to rounding (as `waterfill._newton`); each problem halves its own step. Returns the
    problems that moved."""
    gap0, D0 = s.gap(), s.D.copy()
    flat = 1e-13 * (1.0 + np.abs(D0))
    step, moved = np.ones(len(D0)), np.zeros(len(D0), dtype=bool)
    waiting = live.copy()
    while waiting.any() and step[waiting].max() > 1e-14:
        d = y - s.lam
        lam_try = np.where((step == 1.0)[:, None], y, np.maximum(s.lam + step[:, None] * d, 0.0))
        lam_try /= lam_try.sum(axis=1, keepdims=True)
        trial = _State(st, lam_try)
        with np.errstate(invalid="ignore"):
            ok = ((slope > 0) & (trial.D - D0 >= 1e-4 * step * slope)) | (
                (trial.D >= D0 - flat) & (trial.gap() < gap0)
            )
        ok &= waiting & np.isfinite(trial.D) & np.isfinite(trial.g).all(axis=1)
        s.take(trial, np.flatnonzero(ok))
        moved |= ok
        waiting &= ~ok
        step[waiting] *= 0.5
    return moved


def _newton_batch(st: _Stack, stop) -> tuple[_State, np.ndarray]:
    """Projected Newton ascent on D for every problem of the stack from the uniform mixture
    (`waterfill._newton`, vectorised); returns the state and the problems that stalled."""
    B, p, _ = st.P.shape
    s = _State(st, np.full((B, p), 1.0 / p))
    stalled = ~(np.isfinite(s.D) & np.isfinite(s.g).all(axis=1))
    for _ in range(MAX_ITER):
        live = ~stalled & (s.gap() > stop(s.g.max(axis=1)))
        if not live.any():
            break
        H = st.hessian(s.a, s.t)
        Q = -0.5 * (H + H.transpose(0, 2, 1))
        diag = np.einsum("bii->bi", Q)
        diag += 1e-12 * np.maximum(1.0, diag)
        if not np.isfinite(Q).all():
            stalled |= ~np.isfinite(Q).all(axis=(1, 2))
            Q[stalled] = np.eye(p)
        y = _qp_steps(Q, np.einsum("bkj,bj->bk", Q, s.lam) + s.g, s.lam)
        slope = np.einsum("bk,bk->b", s.g, y - s.lam)
        moved = _line_search(st, s, y, live, slope)
        stalled |= live & ~moved
    return s, stalled


class _Eligible(NamedTuple):
    """The support (B, N), its envelope lo, hi (0 off the support), X0, and which problems the
    batch covers."""

    mask: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    seen: np.ndarray
    ok: np.ndarray


def _eligible(P: np.ndarray, E: np.ndarray, support: str) -> _Eligible:
    """The support and envelope of every problem, and which problems the batch covers: a
    feasible set that is not one point and reaches sum 1 with room to spare wherever the domains
    look, finite loss, and no mass below SMALLEST on the support."""
    seen = P.max(axis=1) > 0
    e_min, e_max = E.min(axis=1), E.max(axis=1)
    mask = seen | (e_max > 0) if support == "union" else seen
    lo = np.where(mask, e_min, 0.0)
    hi = np.where(mask, e_max, 0.0)
    reach = lo.sum(axis=1) + np.where(seen, hi - lo, 0.0).sum(axis=1)
    # the smallest positive mass of P, and of E on the support (0 stays 0: "no mass")
    tiny = (np.where(P > 0, P, 1.0).min(axis=(1, 2)) < SMALLEST) | (
        np.where(mask[:, None, :] & (E > 0), E, 1.0).min(axis=(1, 2)) < SMALLEST
    )
    covered = (seen & (hi > 0)).sum(axis=1) == seen.sum(axis=1)  # finite loss
    ok = (reach > 1.0 + 1e-9) & (lo.sum(axis=1) < 1.0 - 1e-9) & covered & ~tiny
    return _Eligible(mask, lo, hi, seen, ok)


def _certified_rows(s: _State, tol, rtol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-domain KL graded for the model's sum, value, which rows certify) for every problem:
    a sum s > 1 counts + log s (as `exact._run`'s grade), and a row certifies when
    |value - D(lam)| <= tol + rtol |value| (`exact.certified`)."""
    g = s.g + np.maximum(np.log(s.q.sum(axis=1)), 0.0)[:, None]
    value = g.max(axis=1)
    gap = value - s.D
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(value) & np.isfinite(gap) & (np.abs(gap) <= tol + rtol * np.abs(value))
    return g, value, ok


def _solution(
    E_b, mask_b, q, lam, g, value: float, bound: float, support: str, tol, rtol, seconds
) -> Solution:
    """The certified `Solution` of one problem of the batch."""
    gap = value - bound
    return Solution(
        status="optimal",
        method="waterfill",
        solver="waterfill-batch",
        support=support,
        value=value,
        lam=lam,
        per_domain_kl=g,
        model=q,
        duality_gap=gap,
        seconds=seconds,
        gate_fn=lambda: gate_from_model(q, E_b, mask_b),
        gate_rows=lambda sl: gate_from_model(q[sl], E_b[:, sl], mask_b[sl]),
        extra={
            "attempts": [{"solver": "waterfill-batch", "gap": gap, "stopped": "converged"}],
            "tol": tolerance(value, tol, rtol),
            "bound": [bound, value],
        },
    )


def solve_batch(
    problems, support: str = "domains", tol: float = TOL, rtol: float = RTOL
) -> list[Solution]:
    """`solve` for a list of problems of one shape (p, N), vectorised over the list.

    Returns one `Solution` per problem, in order, each certified by the same rule as `solve`
    (``optimal`` only when primal minus D(lam) <= tol + rtol |value|); problems the batch does
    not cover or certify are solved by `solve` (every fallback path)."""
    problems = list(problems)
    if not problems:
        return []
    shape = problems[0].P.shape
    if any(pr.P.shape != shape for pr in problems):
        raise ValueError("solve_batch needs problems of one shape (p, N); see solve_many")
    t0 = time.perf_counter()
    P = np.stack([pr.P for pr in problems])
    E = np.stack([pr.E for pr in problems])
    el = _eligible(P, E, support)
    out: list[Solution | None] = [None] * len(problems)
    rows = np.flatnonzero(el.ok)
    # one BLAS thread: the batched products are many tiny GEMMs that threads do not speed up,
    # while other BLAS users on the cores make a threaded pool 2-4x slower (`exact`)
    with blas_threads(1):
        _solve_rows(P, E, el, rows, out, support, tol, rtol, t0)
    return [
        sol if sol is not None else solve(pr, support=support, tol=tol, rtol=rtol)
        for pr, sol in zip(problems, out, strict=True)
    ]


def _solve_rows(P, E, el: _Eligible, rows, out: list, support: str, tol, rtol, t0: float) -> None:
    """Projected Newton on the covered problems ``rows`` of the stack; each certified answer
    goes to ``out`` (the others stay None)."""
    if len(rows):
        st = _Stack(P[rows], el.lo[rows], el.hi[rows], el.seen[rows])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            s, stalled = _newton_batch(st, lambda v: 0.5 * (tol + rtol * np.abs(v)))
            g, value, ok = _certified_rows(s, tol, rtol)
        each = (time.perf_counter() - t0) / len(out)
        for i in np.flatnonzero(ok & ~stalled):
            b = rows[i]
            out[b] = _solution(
                E[b],
                el.mask[b],
                s.q[i],
                s.lam[i].copy(),
                g[i],
                float(value[i]),
                float(s.D[i]),
                support,
                tol,
                rtol,
                each,
            )


def solve_many(
    problems, support: str = "domains", tol: float = TOL, rtol: float = RTOL
) -> list[Solution]:
    """`solve_batch` over problems of any shapes: grouped by (p, N), answers in input order."""
    problems = list(problems)
    groups: dict[tuple, list[int]] = {}
    for i, pr in enumerate(problems):
        groups.setdefault(pr.P.shape, []).append(i)
    out: list[Solution | None] = [None] * len(problems)
    for idx in groups.values():
        for i, sol in zip(
            idx, solve_batch([problems[i] for i in idx], support, tol, rtol), strict=True
        ):
            out[i] = sol
    return out
