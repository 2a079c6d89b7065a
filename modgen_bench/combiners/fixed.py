"""The best fixed-weight gate: one constant w for every input, chosen for the worst mixture.

    w_hat = argmin_{w in simplex} max_k L_k(w) - c_k,   L_k(w) = -sum_i a_ki log sum_j w_j E_j(x_ki)

over domain k's training items x_ki with weights a_ki (sum_i a_ki = 1; 1/n_k for windows, P_k(x)
for a discrete problem graded exactly) and offsets c_k (0: the worst NLL, the leaderboard's
worst vertex; the own expert's NLL: the excess loss; -H(P_k): the worst KL). -log of a linear
function is convex, a weighted sum and a max keep convexity, so this is a convex program in w
(solved by cvxpy). Constant gates need no normaliser: sum_j w_j E_j is a mixture of
distributions (Z = 1 exactly). softmax(eps) is Thm 3's witness (PAPER.md section 3), the exact
core's `solve_static` the best static w on a finite space; this is its empirical counterpart on
cached log-likelihoods, separating what SPD buys by routing from what it buys by reweighting.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Combiner, CombinerResult, register

__all__ = ["best_fixed_weights", "fixed_gate_nll", "FixedBest", "SIGNALS"]

SIGNALS = ("nll", "excess")


def best_fixed_weights(
    log_e: list, weights: list | None = None, offsets=None
) -> tuple[np.ndarray, float]:
    """(w_hat (p,), its objective max_k L_k(w) - c_k) for domain items ``log_e[k]`` (n_k, p) of
    log E_j(x) (whole items, nats), item weights ``weights[k]`` (n_k,) (default uniform), offsets
    c (p,) (default 0). Rows are shifted by their max before exponentiating, so windows with
    log-likelihoods of -1000 stay finite."""
    import cvxpy as cp

    from ..exact.conic import ConicFailure, _solve_chain

    p = log_e[0].shape[1]
    c = np.zeros(len(log_e)) if offsets is None else np.asarray(offsets, float)
    terms = [_shifted(le, None if weights is None else weights[k]) for k, le in enumerate(log_e)]
    w = cp.Variable(p, nonneg=True)
    t = cp.Variable()
    cons = [cp.sum(w) == 1]
    for k, (a, m, A) in enumerate(terms):
        cons.append(-(a @ m) - a @ cp.log(A @ w) - c[k] <= t)
    candidates = [np.full(p, 1.0 / p)]
    try:
        _solve_chain(cp.Problem(cp.Minimize(t), cons))
        candidates.append(np.asarray(w.value, dtype=np.float64))
    except ConicFailure:
        # conic solvers can stall on long windows' badly scaled logs; the same convex program
        # by SQP on its epigraph (the weights only need to be good: the gate is graded exactly)
        candidates.append(_epigraph_sqp(terms, c, p))
    cands = [np.clip(v, 0.0, None) / np.clip(v, 0.0, None).sum() for v in candidates]
    values = [_objective(log_e, weights, c, v) for v in cands]
    i = int(np.argmin(values))
    return cands[i], values[i]


def _shifted(le, a=None):
    """(a (n,), m (n,), A (n, p)) of one domain: item weights, row maxima, exp(log E - max)."""
    le = np.asarray(le, dtype=np.float64)
    a = np.full(len(le), 1.0 / len(le)) if a is None else np.asarray(a, dtype=np.float64)
    m = le.max(axis=1)
    return a, m, np.exp(le - m[:, None])  # A: max 1 per row


def _epigraph_sqp(terms, c, p: int) -> np.ndarray:
    """min t s.t. L_k(w) - c_k <= t, w in the simplex, by SLSQP with exact gradients
    (dL_k/dw = -sum_i a_i A_i / (A_i . w)); w >= 1e-12 keeps every log finite."""
    from scipy.optimize import minimize

    def f(k, w):
        a, m, A = terms[k]
        return -(a @ m) - a @ np.log(A @ w) - c[k]

    def grad(k, w):
        a, _, A = terms[k]
        return -(a / (A @ w)) @ A

    w0 = np.full(p, 1.0 / p)
    x0 = np.append(w0, max(f(k, w0) for k in range(len(terms))))
    cons = [
        {
            "type": "eq",
            "fun": lambda x: x[:p].sum() - 1.0,
            "jac": lambda x: np.append(np.ones(p), 0.0),
        }
    ]
    for k in range(len(terms)):
        cons.append(
            {
                "type": "ineq",
                "fun": lambda x, k=k: x[p] - f(k, x[:p]),
                "jac": lambda x, k=k: np.append(-grad(k, x[:p]), 1.0),
            }
        )
    res = minimize(
        lambda x: x[p],
        x0,
        jac=lambda x: np.append(np.zeros(p), 1.0),
        bounds=[(1e-12, 1.0)] * p + [(None, None)],
        constraints=cons,
        method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-12},
    )
    return res.x[:p]


def _objective(log_e, weights, c, w) -> float:
    """max_k L_k(w) - c_k at ``w``, in float64 (the value the returned weights really reach)."""
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    vals = []
    for k, le in enumerate(log_e):
        le = np.asarray(le, dtype=np.float64)
        a = np.full(len(le), 1.0 / len(le)) if weights is None else np.asarray(weights[k], float)
        s = le + lw
        m = s.max(axis=1)
        vals.append(-(a @ (m + np.log(np.exp(s - m[:, None]).sum(axis=1)))) - c[k])
    return float(max(vals))


def fixed_gate_nll(w, log_e: torch.Tensor, T: int) -> torch.Tensor:
    """(n,) per-token NLL of the constant gate w: -log sum_j w_j E_j(x) / (T - 1); log_e (n, p)."""
    lw = torch.log(torch.as_tensor(w, dtype=torch.float64))
    return -torch.logsumexp(lw + log_e.double(), dim=-1) / (T - 1)


@register("gate_fixed_best")
class FixedBest(Combiner):
    """Settings: ``signal`` "nll" (default: minimise the worst training-window NLL, the
    leaderboard's worst vertex) or "excess" (the SPD gate's signal: NLL minus the own expert's)."""

    trains = "p constant weights w (convex, on the cached training-window log-likelihoods)"
    grading = "exact"

    def fit(self, ctx, settings):
        signal = settings.get("signal", "nll")
        if signal not in SIGNALS:
            raise ValueError(
                f"gate_fixed_best: signal {signal!r} is not one of {', '.join(SIGNALS)}"
            )
        pool = ctx.cache.pool.double()  # (p, n, p)
        p, T = pool.shape[0], ctx.splits.T
        log_e = [pool[k].numpy() for k in range(p)]
        offsets = None if signal == "nll" else [-float(pool[k, :, k].mean()) for k in range(p)]
        w, value = best_fixed_weights(log_e, offsets=offsets)
        rows = [
            ("weights", f"w_{name}", float(v))
            for name, v in zip(ctx.splits.corpora, w, strict=False)
        ]
        rows.append(("train", f"worst_{signal}_per_token", value / (T - 1)))
        b = ctx.budget
        cost = ctx.cost(b["expert_params"] + p, b["expert_flops"], b["expert_tokens"])
        return CombinerResult(fixed_gate_nll(w, ctx.cache.test, T), cost, rows=rows)
