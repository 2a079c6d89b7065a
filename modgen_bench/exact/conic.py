"""Reference conic formulations in cvxpy (exponential cones), checked for DCP at build time.

Minimax gate (PAPER.md section 2, epigraph form over the reduced model q on the support S):

    minimise t  s.t.  -H(P[k]) - sum_{x in X0} P[k](x) u(x) <= t   (k = 0..p-1; duals = lam*)
                      u(x) <= log q(x)   (one exponential cone per outcome, shared by all k)
                      lo <= q <= hi,  sum_S q = 1.

Also the fixed-mixture problem (objective sum_k lam[k] KL(P[k] || q), same constraints) and the
best constant (static) gate ``min_w max_k KL(P[k] || sum_j w[j] E[j])`` over w in the simplex.
Solvers are tried in order (Clarabel, then SCS at tight tolerance with a time limit, then ECOS
when installed); the one that answered is reported. Dirichlet(0.5) domains at N = 2e4 have entries
near 1e-14 that make interior-point solvers stall, and near-deterministic domains make Clarabel stop
with status `optimal_inaccurate`. Such an answer is accepted only when the caller's
solver-independent
certificate (the duality gap) is at most INACCURATE_GAP_MAX, and is reported as
"CLARABEL (solver status optimal_inaccurate)" (the solver's own word; whether the answer is
`optimal` is the caller's certificate's); otherwise the chain moves on, and raises `ConicFailure`
at its end.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np

from ..divergences import entropy
from ..gates import envelope, support_mask
from ..problem import DiscreteProblem
from .budget import clock

__all__ = [
    "ConicFailure",
    "solve_conic",
    "solve_log_conic",
    "solve_static_conic",
    "SOLVER_CHAIN",
    "INACCURATE_GAP_MAX",
]

#: An `optimal_inaccurate` answer is kept when its certified duality gap is at most this (nats).
INACCURATE_GAP_MAX = 1e-7

SOLVER_CHAIN = (
    ("CLARABEL", {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}),
    ("SCS", {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000, "time_limit_secs": 60}),
    ("ECOS", {"abstol": 1e-10, "reltol": 1e-10}),
)


#: Clarabel's settings for `solve_log_conic`: every entry is O(1..700) there, so it can be asked
#: for gaps of 1e-12 with a static regularisation of 1e-12 (default 1e-8). The certificate needs
#: ~1e-9 |V*|: on the 23 seed-0 fuzz leftovers, Clarabel's own (model, bound) pair certified 20
#: with the default regularisation (worst 7.2 x tol) and all 23 with 1e-12 (worst 0.13 x tol).
LOG_CLARABEL = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "static_regularization_constant": 1e-12,
}


class ConicFailure(RuntimeError):
    """No solver in the chain returned an optimal answer."""


#: Seconds a conic solver needs at least to be worth starting within a solve's time budget.
MIN_SECONDS = 0.05


def _timed(name: str, opts: dict, time_left: float) -> dict | None:
    """The solver's options with its time limit cut to ``time_left`` (None: no time left)."""
    if time_left < MIN_SECONDS:
        return None
    if name == "CLARABEL":
        return {**opts, "time_limit": min(opts.get("time_limit", np.inf), time_left)}
    if name == "SCS":
        return {**opts, "time_limit_secs": min(opts.get("time_limit_secs", np.inf), time_left)}
    return opts if np.isinf(time_left) else None  # ECOS has no time limit: only unbudgeted


def _solve_chain(prob: cp.Problem, certify=None, time_left: float = np.inf) -> str:
    """Solve with the first solver of the chain that answers; return its name.

    ``certify()`` (optional) returns the duality gap of the variables' current values; it decides
    whether an `optimal_inaccurate` status is good enough. ``time_left``: seconds of the solve's
    budget; each solver's own time limit is cut to what is left, and none starts without it.
    """
    assert prob.is_dcp(), "conic formulation must be DCP"
    installed = set(cp.installed_solvers())
    tried = []
    deadline = clock() + time_left  # the budget's clock
    for name, opts in SOLVER_CHAIN:
        if name not in installed:
            continue
        opts = _timed(name, opts, deadline - clock())
        if opts is None:
            tried.append(f"{name}: not started (time limit reached)")
            continue
        try:
            with warnings.catch_warnings():  # an inaccurate status is judged by `certify` below
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                prob.solve(solver=name, **opts)
        except cp.error.SolverError as exc:
            tried.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        if prob.status == cp.OPTIMAL:
            return name
        if prob.status == cp.OPTIMAL_INACCURATE and certify is not None:
            gap = certify()
            if gap <= INACCURATE_GAP_MAX:
                return f"{name} (solver status optimal_inaccurate)"
            tried.append(f"{name}: status {prob.status}, certificate gap {gap:.2g}")
            continue
        tried.append(f"{name}: status {prob.status}")
    raise ConicFailure(
        "every conic solver failed (" + "; ".join(tried) + "); "
        "use --method waterfill, which does not depend on conditioning"
    )


def solve_conic(
    problem: DiscreteProblem,
    support: str = "domains",
    lam_fixed=None,
    certify=None,
    time_left: float = np.inf,
) -> dict:
    """Solve the minimax (or, with ``lam_fixed``, the fixed-mixture) problem with cvxpy.

    ``certify(q, lam) -> gap`` (optional) vets answers the solver flags as inaccurate."""
    mask = support_mask(problem, support)
    lo, hi = envelope(problem)
    P = problem.P[:, mask]
    seen = np.any(P > 0, axis=0)  # X0 within the support
    Pseen = P[:, seen]
    n = int(mask.sum())
    q = cp.Variable(n)
    u = cp.Variable(int(seen.sum()))
    neg_H = -entropy(P)
    box = [q >= lo[mask], q <= hi[mask], cp.sum(q) == 1, u <= cp.log(q[np.flatnonzero(seen)])]
    if lam_fixed is None:
        t = cp.Variable()
        epi = [neg_H - Pseen @ u <= t]
        prob = cp.Problem(cp.Minimize(t), epi + box)
    else:
        lam = np.asarray(lam_fixed, dtype=np.float64)
        prob = cp.Problem(cp.Minimize(lam @ neg_H - (lam @ Pseen) @ u), box)

    def read():
        qv = np.asarray(q.value, dtype=np.float64)
        if lam_fixed is not None:
            return qv, lam
        duals = np.clip(np.asarray(epi[0].dual_value, dtype=np.float64).ravel(), 0.0, None)
        return qv, duals / duals.sum()

    solver = _solve_chain(prob, certify and (lambda: certify(*read())), time_left)
    qv, lam_out = read()
    return {"q": qv, "lam": lam_out, "mask": mask, "solver": solver}


def solve_log_conic(
    P: np.ndarray,
    neg_entropy: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    time_left: float = np.inf,
) -> dict:
    """The minimax problem in the log-model u = log q, for the exact core's fallback chain.

    PAPER.md section 2 (Reduction), on the support S with X0 = outcomes some domain sees:

        minimise t  s.t.  -H(P[k]) - sum_{x in X0} P[k](x) u(x) <= t       (duals = lam*)
                          log sum_{x in X0} exp u(x) <= log(1 - sum_{S minus X0} lo),
                          log lo <= u <= log hi   on X0,

    with q = lo off X0 (mass there only lowers what X0 may have). Every quantity is O(1..700)
    where the q-form of `solve_conic` has entries down to 1e-300 beside 1, so Clarabel stays
    accurate on masses that make the q-form fail (the fuzz's log-uniform and sparse families). Only
    Clarabel is asked, once; its answer is returned whatever its status (`optimal_inaccurate`
    included) and the caller's certificate grades it.

    ``P`` (p, n), ``lo``, ``hi`` (n,) on the support. Returns ``{"u"}`` (n,; -inf off X0), ``"lam"``
    (the duals of the epigraph rows, normalised) and ``"solver"`` (says "solver status
    optimal_inaccurate" when Clarabel's was: the caller's certificate grades the answer either
    way); raises `ConicFailure` when Clarabel gives no values.
    """
    seen = P.max(axis=0) > 0
    room = 1.0 - float(lo[~seen].sum())
    if not seen.any() or room <= 0:
        raise ConicFailure("log-space conic form: no mass left for the outcomes the domains see")
    Ps, lo_s, hi_s = P[:, seen], lo[seen], hi[seen]
    u, t = cp.Variable(Ps.shape[1]), cp.Variable()
    epi = [neg_entropy - Ps @ u <= t]
    cons = epi + [cp.log_sum_exp(u) <= np.log(room), u <= np.log(hi_s)]
    floor = np.flatnonzero(lo_s > 0)
    if len(floor):
        cons.append(u[floor] >= np.log(lo_s[floor]))
    prob = cp.Problem(cp.Minimize(t), cons)
    assert prob.is_dcp(), "conic formulation must be DCP"
    opts = _timed("CLARABEL", LOG_CLARABEL, time_left)
    if opts is None:
        raise ConicFailure("log-space conic form: not started (time limit reached)")
    try:
        with warnings.catch_warnings():  # an inaccurate status is graded by the caller
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.solve(solver="CLARABEL", **opts)
    except cp.error.SolverError as exc:
        raise ConicFailure(f"log-space conic form: CLARABEL: {str(exc).splitlines()[0]}") from exc
    if u.value is None or epi[0].dual_value is None:
        raise ConicFailure(f"log-space conic form: CLARABEL status {prob.status}")
    u_full = np.full(P.shape[1], -np.inf)
    u_full[seen] = u.value
    lam = np.clip(np.asarray(epi[0].dual_value, dtype=np.float64).ravel(), 0.0, None)
    lam = lam / lam.sum() if lam.sum() > 0 else np.full(P.shape[0], 1.0 / P.shape[0])
    name = (
        "CLARABEL-log"
        if prob.status == cp.OPTIMAL
        else "CLARABEL-log (solver status optimal_inaccurate)"
    )
    return {"u": u_full, "lam": lam, "solver": name}


def solve_static_conic(problem: DiscreteProblem, certify=None, time_left: float = np.inf) -> dict:
    """Best constant gate: min_w max_k KL(P[k] || w @ E) over the simplex, and its mixture duals.

    The static model sum_j w[j] E[j] is a distribution on all N outcomes (constant gates need no
    normaliser); compare with the static-gate barrier log sum_k exp(eps[k]) (PAPER.md section 3).
    """
    seen = np.any(problem.P > 0, axis=0)
    P, E = problem.P[:, seen], problem.E[:, seen]
    p = problem.p
    w = cp.Variable(p, nonneg=True)
    u = cp.Variable(int(seen.sum()))
    t = cp.Variable()
    epi = [-entropy(P) - P @ u <= t]
    prob = cp.Problem(cp.Minimize(t), epi + [cp.sum(w) == 1, u <= cp.log(E.T @ w)])

    def read():
        wv = np.clip(np.asarray(w.value, dtype=np.float64), 0.0, None)
        lam = np.clip(np.asarray(epi[0].dual_value, dtype=np.float64).ravel(), 0.0, None)
        return wv / wv.sum(), lam / lam.sum()

    solver = _solve_chain(prob, certify and (lambda: certify(*read())), time_left)
    wv, lam = read()
    return {"w": wv, "lam": lam, "value": float(t.value), "solver": solver}
