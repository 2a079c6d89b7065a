"""`solve_batch`: many small problems of one shape solved together, vectorised over the batch.

The theory checks and the fuzz solve thousands of problems with p <= 16, N <= 200, where one
`solve` costs ~0.3-1 ms of Python overhead for a few microseconds of arithmetic. Here the
projected Newton method of `waterfill._newton` runs on a stack (B, p, N) at once: the water level
by a vectorised safeguarded Newton on t (warm-started at each problem's last level), the dual
Hessian by one batched product, the simplex-constrained Newton step by a batched active-set
method (warm-started on the face of the current mixture; `waterfill.simplex_qp` for a problem
whose system is singular), and a line search that halves the steps of the problems still
waiting only. A problem stops as soon as it certifies or stalls, and the stack is compacted once
fewer than COMPACT_BELOW of it still work, so the later iterations run on the few problems left.

Every problem is graded by the same certificate as `solve` (primal max_k KL(P[k] || q) of a q in
the feasible set minus D(lam) at q(lam) from lam @ P); a problem that does not certify in the
batch, or that the batch does not cover (an infeasible or one-point set, a ceiling the mixture
cannot reach, a stall where masses underflow), is passed to `solve`, so the answers and their
certificates are those of `solve` (PAPER.md section 2).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..gates import gate_from_model
from ..threads import blas_threads
from . import RTOL, TOL, solve
from .solution import Solution
from .waterfill import STALL, SUM_ULPS, simplex_qp

__all__ = ["solve_batch", "solve_many"]

#: Newton iterations a problem may take in the batch before `solve` takes it over
MAX_ITER = 40
#: halvings of a line search (steps down to 2^-30 ~ 1e-9) before the problem counts as stalled
MAX_HALVINGS = 30
#: iterations of the water level's safeguarded Newton (warm-started: ~2-6 are typical)
MAX_LEVEL = 30
#: |sum q - 1| accepted when no outcome is free (rounding only; `waterfill.FLAT_SUM_TOL`)
FLAT_SUM_TOL = 1e-12


#: bytes of P per block of problems in the stack's elementwise passes (stays in cache)
CHUNK_BYTES = 1 << 18


def _chunks(P: np.ndarray):
    """(slice of problems, scratch buffer of that many problems' P) covering the stack."""
    step = max(1, CHUNK_BYTES // max(P[0].nbytes, 1))
    buf = np.empty((min(step, len(P)),) + P.shape[1:])
    for b0 in range(0, len(P), step):
        c = slice(b0, min(b0 + step, len(P)))
        yield c, buf[: c.stop - c.start]


class _Stack:
    """The fixed data of the problems in the stack: P (B, p, N), lo and hi (B, N) (0 off the
    support), X0 as a mask (B, N) and -H(P[k]) (B, p)."""

    def __init__(self, P, lo, hi, seen, neg_entropy):
        self.P, self.lo, self.hi, self.seen = P, lo, hi, seen
        self.neg_entropy = neg_entropy
        self.width = np.where(seen, hi - lo, 0.0)  # what sum q gains as t -> inf
        self.lo_sum = lo.sum(axis=1)

    def take(self, rows: np.ndarray) -> "_Stack":
        """The problems ``rows`` as a stack of their own (copies)."""
        return _Stack(
            self.P[rows], self.lo[rows], self.hi[rows], self.seen[rows], self.neg_entropy[rows]
        )

    def level(self, a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """q = clip(t a, lo, hi) with sum q = 1 for every row of a (B, N), by the vectorised
        safeguarded Newton of `InnerProblem.model_from` from the water levels ``t`` (B,).

        Returns (q, t, ok); ``ok`` is False where no finite level exists (every outcome the
        mixture sees at its ceiling short of 1: the nu = 0 branch, left to `solve`) or the
        iteration did not settle."""
        reach = self.lo_sum + np.where(a > 0, self.width, 0.0).sum(axis=1)
        ok = reach > 1.0 + FLAT_SUM_TOL
        t = np.where(ok, t, 1.0)
        t_lo, t_hi = np.zeros_like(t), np.full_like(t, np.inf)
        done = ~ok
        # in place: a fresh (B, N) array per operation costs more than the operation here
        r, q, free = np.empty_like(a), np.empty_like(a), np.empty(a.shape, dtype=bool)
        for _ in range(MAX_LEVEL):
            np.multiply(a, t[:, None], out=r)
            np.minimum(np.maximum(r, self.lo, out=q), self.hi, out=q)
            s = q.sum(axis=1)
            F = np.einsum("bn,bn->b", a, np.equal(q, r, out=free))  # slope of sum q in t
            dev = np.abs(s - 1.0)
            done |= (dev <= SUM_ULPS) | ((F == 0) & (dev <= FLAT_SUM_TOL))
            if done.all():
                return q, t, ok
            t_lo, t_hi = np.where(s < 1.0, t, t_lo), np.where(s > 1.0, t, t_hi)
            with np.errstate(divide="ignore", invalid="ignore"):
                t_new = t + (1.0 - s) / F
            bad = ~((t_lo < t_new) & (t_new < t_hi))
            geo = np.where(
                np.isinf(t_hi), 16.0 * t, np.where(t_lo == 0, t_hi / 16.0, np.sqrt(t_lo * t_hi))
            )
            t = np.where(done, t, np.where(bad, geo, t_new))
        return q, t, ok & done

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

    def hessian(self, lam, a, t) -> np.ndarray:
        """The dual Hessian of `InnerProblem.hessian_at` for every problem: (B, p, p).

        M = (P w) P' with w = 1/a on the free outcomes (0 elsewhere); since a = lam @ P, the
        free mass under each domain F = P @ free is M @ lam and the free total a @ free is
        lam @ F, so no further pass over P is needed."""
        r = a * t[:, None]
        free = (r > self.lo) & (r < self.hi)
        w = np.zeros_like(a)
        np.divide(1.0, a, out=w, where=free)  # free outcomes have a > 0 (t a > lo >= 0)
        M = np.empty((len(a), self.P.shape[1], self.P.shape[1]))
        for c, buf in _chunks(self.P):  # (P w) P' a cache-sized block of problems at a time
            Pc = self.P[c]
            np.matmul(np.multiply(Pc, w[c, None, :], out=buf), Pc.transpose(0, 2, 1), out=M[c])
        F = np.matmul(M, lam[:, :, None])  # (B, p, 1)
        total = np.matmul(lam[:, None, :], F)  # (B, 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            M -= np.where(total > 0, F * F.transpose(0, 2, 1) / total, 0.0)
        return -M


class _State:
    """lam, the mixture a = lam @ P, the water level (q, t), KL g and D(lam) of every problem of
    a stack; ``ok``: whether the level was found and g and D are finite."""

    FIELDS = ("lam", "a", "q", "t", "g", "D", "ok")

    def __init__(self, **fields):
        for name in self.FIELDS:
            setattr(self, name, fields[name])

    @classmethod
    def at(cls, st: _Stack, lam: np.ndarray, t0: np.ndarray) -> "_State":
        """The state at the mixtures lam (B, p), water levels warm-started at t0 (B,)."""
        a = np.matmul(lam[:, None, :], st.P)[:, 0, :]
        q, t, ok = st.level(a, t0)
        g, D = st.grade(lam, a, q, t)
        ok &= np.isfinite(D) & np.isfinite(g).all(axis=1)
        return cls(lam=lam, a=a, q=q, t=t, g=g, D=D, ok=ok)

    def rows(self, rows) -> "_State":
        return _State(**{name: getattr(self, name)[rows] for name in self.FIELDS})

    def put(self, rows, other: "_State", which) -> None:
        """Rows ``rows`` of self become rows ``which`` of other (other's arrays themselves
        when that is all of both, in order: no copy)."""
        whole = len(rows) == len(self.D) == len(which) and which.all()
        for name in self.FIELDS:
            if whole:
                setattr(self, name, getattr(other, name))
            else:
                getattr(self, name)[rows] = getattr(other, name)[which]

    def gap(self) -> np.ndarray:
        return self.g.max(axis=1) - self.D


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
    """argmin_y 0.5 y'Qy - c'y over the simplex for every problem (Q positive definite).

    The primal active-set method of `waterfill.simplex_qp` (Nocedal & Wright, Algorithm 16.3),
    batched: from the feasible point lam with its zero coordinates fixed, each round solves the
    KKT system of the face of every problem not yet done (one batched solve), then
    `_active_set_round`. Each round lowers the objective, so a problem still working after
    3p + 5 rounds keeps its (feasible, improved) point; one whose system is singular takes
    `simplex_qp`."""
    B, p = c.shape
    y, W = lam.copy(), lam <= 0
    todo = np.arange(B)
    for _ in range(3 * p + 5):
        Qt, ct = (Q, c) if len(todo) == B else (Q[todo], c[todo])
        yt, mu = _kkt(Qt, ct, W[todo])
        ok = np.isfinite(yt).all(axis=1) & np.isfinite(mu)
        if not ok.all():
            for b in todo[~ok]:
                y[b] = simplex_qp(Q[b], c[b], lam[b])
            Qt, ct, todo, yt, mu = Qt[ok], ct[ok], todo[ok], yt[ok], mu[ok]
        todo = _active_set_round(Qt, ct, y, W, todo, yt, mu)
        if not len(todo):
            break
    np.maximum(y, 0.0, out=y)
    return y / y.sum(axis=1, keepdims=True)


def _active_set_round(Qt, ct, y, W, todo, yt, mu) -> np.ndarray:
    """One round of the active-set method for the problems ``todo`` (y and W updated in place;
    Qt and ct their rows of Q and c), given their face minimisers yt and multipliers mu of
    sum y = 1: move to yt when it is >= 0,
    then free the fixed coordinate of the most negative multiplier (or stop: the KKT conditions
    hold), else move as far as the first coordinate that reaches 0 (the ratio test) and fix it.
    Returns the problems that need another round."""
    y0, Wt, n = y[todo], W[todo], np.arange(len(todo))
    d = yt - y0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(~Wt & (d < 0), -y0 / d, np.inf)
    block = ratio.argmin(axis=1)
    alpha = np.minimum(ratio[n, block], 1.0)
    y[todo] = y0 + alpha[:, None] * d
    hit = alpha < 1.0  # blocked: the coordinate reaching 0 is fixed there
    y[todo[hit], block[hit]] = 0.0
    W[todo[hit], block[hit]] = True
    s = np.matmul(Qt, yt[:, :, None])[:, :, 0] - ct + mu[:, None]
    s = np.where(Wt, s, np.inf)  # multipliers of the fixed coordinates
    worst = s.argmin(axis=1)
    free = ~hit & (s[n, worst] < -1e-14)
    W[todo[free], worst[free]] = False
    return todo[hit | free]


def _finite_gradient(g: np.ndarray) -> np.ndarray:
    """`waterfill._finite_gradient` row by row: KL = inf (a domain the mixture starves) becomes
    a large finite derivative pointing the step towards that domain."""
    finite = np.isfinite(g)
    if finite.all():
        return g
    top = np.where(finite, g, -np.inf).max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.where(finite, g, top + 10.0 * (1.0 + np.abs(top)))


#: the working stack is compacted once fewer than this share of its problems still work; until
#: then the finished ones ride along (a copy of the stack costs more than their share of a step)
COMPACT_BELOW = 0.75


def _trial(st: _Stack, s: _State, lam_try: np.ndarray, wait: np.ndarray) -> _State:
    """The state of the problems ``wait`` at ``lam_try`` (their rows): evaluated on the whole
    stack (the others at their own lam) while they are most of it, else on their own copy."""
    if len(wait) == len(s.D):
        return _State.at(st, lam_try, s.t)
    if len(wait) < COMPACT_BELOW * len(s.D):
        return _State.at(st.take(wait), lam_try, s.t[wait])
    lam = s.lam.copy()
    lam[wait] = lam_try
    return _State.at(st, lam, s.t).rows(wait)


def _line_search(st: _Stack, s: _State, y: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Move every live problem towards its Newton point y: Armijo on D, or a smaller gap where D
    is flat to rounding (as `waterfill._line_search`), halving the step of the problems still
    waiting only. Returns the problems that moved."""
    D0, gap0 = s.D.copy(), s.gap()
    slope = np.einsum("bk,bk->b", _finite_gradient(s.g), y - s.lam)
    flat = 1e-13 * (1.0 + np.abs(D0))
    moved = np.zeros(len(D0), dtype=bool)
    wait, step = np.flatnonzero(live), 1.0
    for _ in range(MAX_HALVINGS):
        if step == 1.0:
            lam_try = y[wait]
        else:
            lam_try = np.maximum(s.lam[wait] + step * (y[wait] - s.lam[wait]), 0.0)
            lam_try /= lam_try.sum(axis=1, keepdims=True)
        trial = _trial(st, s, lam_try, wait)
        d0, sl = D0[wait], slope[wait]
        ok = trial.ok & (
            ((sl > 0) & (trial.D - d0 >= 1e-4 * step * sl))
            | ((trial.D >= d0 - flat[wait]) & (trial.gap() < gap0[wait]))
        )
        s.put(wait[ok], trial, ok)
        moved[wait[ok]] = True
        wait = wait[~ok]
        if not len(wait):
            break
        step *= 0.5
    return moved


def _newton_step(st: _Stack, s: _State, live: np.ndarray) -> np.ndarray:
    """One projected Newton step (`waterfill._newton`) of the ``live`` problems of the stack;
    returns those that moved (the others stalled: no step, or a curvature that overflowed)."""
    H = st.hessian(s.lam, s.a, s.t)
    Q = -0.5 * (H + H.transpose(0, 2, 1))
    diag = np.einsum("bii->bi", Q)
    diag += 1e-12 * np.maximum(1.0, diag)
    live = live & np.isfinite(Q).all(axis=(1, 2))
    c = np.einsum("bkj,bj->bk", Q, s.lam) + _finite_gradient(s.g)
    if live.all():
        y = _qp_steps(Q, c, s.lam)
    else:
        y = s.lam.copy()
        y[live] = _qp_steps(Q[live], c[live], s.lam[live])
    live &= np.isfinite(y).all(axis=1)
    return _line_search(st, s, y, live) & live


class _Work:
    """The working stack of `_newton_batch`: its problems (indices into the batch), their state,
    which of them still work, and each one's best gap and the steps since it last halved."""

    def __init__(self, st: _Stack, s: _State):
        n = len(s.D)
        self.st, self.s, self.idx = st, s, np.arange(n)
        self.live, self.best, self.since = np.ones(n, bool), np.full(n, np.inf), np.zeros(n, int)

    def compact(self) -> None:
        """Drop the finished problems once fewer than COMPACT_BELOW of the stack still work."""
        keep = np.flatnonzero(self.live)
        if len(keep) < COMPACT_BELOW * len(self.live):
            self.st, self.s = self.st.take(keep), self.s.rows(keep)
            for name in ("idx", "live", "best", "since"):
                setattr(self, name, getattr(self, name)[keep])


def _newton_batch(st: _Stack, stop) -> tuple[_State, np.ndarray]:
    """Projected Newton ascent on D for every problem of the stack from the uniform mixture
    (`waterfill._newton`, vectorised). A problem leaves when its gap is within ``stop``, when it
    stalls (no step accepted, no finite level, or no halving of its gap in STALL steps) or after
    MAX_ITER steps; the stack is compacted as problems leave (`_Work.compact`), so the later
    steps run on the few problems left. Returns the final state of every problem and which ones
    converged."""
    B, p, _ = st.P.shape
    w = _Work(st, _State.at(st, np.full((B, p), 1.0 / p), np.ones(B)))
    out, converged = w.s.rows(np.arange(B)), np.zeros(B, dtype=bool)
    for it in range(MAX_ITER + 1):
        s = w.s
        gap = s.gap()
        conv = s.ok & (gap <= stop(s.g.max(axis=1)))
        halved = gap < 0.5 * w.best
        w.best, w.since = np.where(halved, gap, w.best), np.where(halved, 0, w.since + 1)
        leave = w.live & (conv | ~s.ok | (w.since > STALL) | (it == MAX_ITER))
        if leave.any():
            out.put(w.idx[leave], s, leave)
            converged[w.idx[leave]] = conv[leave]
            w.live &= ~leave
            if not w.live.any():
                break
            w.compact()
        w.s.ok &= _newton_step(w.st, w.s, w.live) | ~w.live
    return out, converged


class _Stacked(NamedTuple):
    """The problems' arrays stacked: P (B, p, N), -H(P[k]) (B, p), X0 as a mask (B, N) and the
    experts' envelope min_k E[k], max_k E[k] (B, N)."""

    P: np.ndarray
    neg_entropy: np.ndarray
    seen: np.ndarray
    e_min: np.ndarray
    e_max: np.ndarray


def _stacked(problems) -> _Stacked:
    """Stack the problems a cache-sized block at a time and take what the batch needs of each
    block while it is in cache: X0, -H(P[k]) = sum_x P log P (0 log 0 = 0: entries below 1e-300
    contribute < 1e-297 either way) and the experts' envelope (E itself is not kept)."""
    B, (p, N) = len(problems), problems[0].P.shape
    P = np.empty((B, p, N))
    neg_entropy, seen = np.empty((B, p)), np.empty((B, N), dtype=bool)
    e_min, e_max = np.empty((B, N)), np.empty((B, N))
    for c, buf in _chunks(P):
        Pc = np.stack([pr.P for pr in problems[c]], out=P[c])
        np.greater(Pc.max(axis=1), 0.0, out=seen[c])
        np.stack([pr.E for pr in problems[c]], out=buf)
        np.min(buf, axis=1, out=e_min[c])
        np.max(buf, axis=1, out=e_max[c])
        np.log(np.maximum(Pc, 1e-300, out=buf), out=buf)
        np.einsum("bkn,bkn->bk", Pc, buf, out=neg_entropy[c])
    return _Stacked(P, neg_entropy, seen, e_min, e_max)


def _neg_entropy(P: np.ndarray) -> np.ndarray:
    """-H(P[k]) = sum_x P log P (B, p) of stacked arrays (0 log 0 = 0, as in `_stacked`)."""
    return np.einsum("bkn,bkn->bk", P, np.log(np.maximum(P, 1e-300)))


def _stacked_arrays(P: np.ndarray, E: np.ndarray, neg_entropy=None) -> _Stacked:
    """The `_Stacked` of problems whose P and E (B, p, N) are stacked already (the theory
    checks' batched solves build them so); ``neg_entropy`` (B, p) where the caller has its own
    per-domain constant, else -H(P[k])."""
    if neg_entropy is None:
        neg_entropy = _neg_entropy(P)
    return _Stacked(P, neg_entropy, P.max(axis=1) > 0, E.min(axis=1), E.max(axis=1))


class _Eligible(NamedTuple):
    """The support (B, N), its envelope lo, hi (0 off the support), X0, and which problems the
    batch covers."""

    mask: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    seen: np.ndarray
    ok: np.ndarray


def _eligible(stk: _Stacked, support: str) -> _Eligible:
    """The support and envelope of every problem, and which problems the batch covers: a
    feasible set that is not one point and reaches sum 1 with room to spare wherever the domains
    look, and finite loss. Tiny masses stay: where lam_k P[k] underflows, q = 0 under a domain's
    mass gives KL = inf, and that problem does not certify in the batch."""
    seen = stk.seen
    mask = seen | (stk.e_max > 0) if support == "union" else seen
    lo = np.where(mask, stk.e_min, 0.0)
    hi = np.where(mask, stk.e_max, 0.0)
    reach = lo.sum(axis=1) + np.where(seen, hi - lo, 0.0).sum(axis=1)
    ok = (reach > 1.0 + 1e-9) & (lo.sum(axis=1) < 1.0 - 1e-9)
    ok &= ~(seen & (hi == 0)).any(axis=1)  # finite loss
    return _Eligible(mask, lo, hi, seen, ok)


def _graded(s: _State, tol, rtol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-domain KL graded for the model's sum, value, which rows certify) for every problem:
    a sum s > 1 counts + log s (as `exact._run`'s grade), and a row certifies when
    |value - D(lam)| <= tol + rtol |value| (`exact.certified`)."""
    g = s.g + np.maximum(np.log(s.q.sum(axis=1)), 0.0)[:, None]
    value = g.max(axis=1)
    gap = value - s.D
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(value) & np.isfinite(gap) & (np.abs(gap) <= tol + rtol * np.abs(value))
    return g, value, ok


def _answers(problems, el: _Eligible, rows, s: _State, ok, support, tol, rtol, each) -> dict:
    """The certified `Solution` of every problem ``rows[i]`` with ``ok[i]``, by problem index.

    Built in bulk: the numbers as Python floats in one conversion each, the per-problem arrays
    as rows (views) of the stack's."""
    g, value, _ = _graded(s, tol, rtol)
    good = np.flatnonzero(ok)
    values, bounds = value[good].tolist(), s.D[good].tolist()
    tols = (tol + rtol * np.abs(value[good])).tolist()
    out = {}
    for i, v, bound, t in zip(good.tolist(), values, bounds, tols, strict=True):
        b = int(rows[i])
        q, E_b, mask_b = s.q[i], problems[b].E, el.mask[b]
        gap = v - bound
        out[b] = Solution(
            status="optimal",
            method="waterfill",
            solver="waterfill-batch",
            support=support,
            value=v,
            lam=s.lam[i],
            per_domain_kl=g[i],
            model=q,
            duality_gap=gap,
            seconds=each,
            gate_fn=lambda q=q, E_b=E_b, m=mask_b: gate_from_model(q, E_b, m),
            gate_rows=lambda sl, q=q, E_b=E_b, m=mask_b: gate_from_model(q[sl], E_b[:, sl], m[sl]),
            extra={
                "attempts": [{"solver": "waterfill-batch", "gap": gap, "stopped": "converged"}],
                "tol": t,
                "bound": [bound, v],
            },
        )
    return out


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
    # one BLAS thread: the batched products are many tiny GEMMs that threads do not speed up,
    # while other BLAS users on the cores make a threaded pool 2-4x slower (`exact`)
    with blas_threads(1), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        done = _solve_stack(problems, support, tol, rtol, t0)
    return [
        done[b] if b in done else solve(pr, support=support, tol=tol, rtol=rtol)
        for b, pr in enumerate(problems)
    ]


def _solve_stack(problems, support: str, tol, rtol, t0: float) -> dict:
    """Projected Newton on the problems of the stack that the batch covers; the certified
    answers by problem index."""
    stk = _stacked(problems)
    el = _eligible(stk, support)
    rows = np.flatnonzero(el.ok)
    if not len(rows):
        return {}
    if len(rows) == len(problems):
        st = _Stack(stk.P, el.lo, el.hi, el.seen, stk.neg_entropy)
    else:
        st = _Stack(stk.P[rows], el.lo[rows], el.hi[rows], el.seen[rows], stk.neg_entropy[rows])
    s, converged = _newton_batch(st, lambda v: 0.5 * (tol + rtol * np.abs(v)))
    ok = converged & _graded(s, tol, rtol)[2]
    each = (time.perf_counter() - t0) / len(problems)
    return _answers(problems, el, rows, s, ok, support, tol, rtol, each)


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
