"""Algorithm 1 (PAPER.md section 4): EG ascent on lam, projected gradient descent on the gate,
exact gradients.

On a discrete problem only pi_g enters the objective (PAPER.md section 2, "Reduction"), so the
gate is represented by its model q on the support S, constrained to the envelope set
G1 ~ {lo <= q <= hi, sum_S q = 1}; `gates.gate_from_model` turns q back into a gate. Each step,
with the full (exact) gradients of the linearised game Lt(lam, q) = sum_k lam[k] KL(P[k] || q):

    gain[k] = KL(P[k] || q_t)                          (lam's gradient)
    q_{t+1} = Proj_G1(q_t + eta_q P_lam / q_t)         (q's gradient is -P_lam / q; Euclidean
                                                        projection)
    lam_{t+1} = lam_t * exp(eta_lam gain) / norm       (EG)

and the returned pair is the average of the iterates (the O(sqrt(log p / T)) rate is for the
averages). Step sizes [PAPER.md: open]: eta_q = 1 / L_t with L_t = max_x P_lam(x) / q_t(x)^2 the
local curvature of the q-objective (largest diagonal Hessian entry), so a step never overshoots;
eta_lam = 1 (gains are O(1) nats and exact, so no noise to damp). The averages run over the
second half of the iterates (the first half is burn-in), which removes the O(1/T) bias of the
starting point.

``signal`` swaps lam's gain for the exact counterpart of an SPD lam signal: ``kl`` (the paper's
objective), ``nll`` (KL + H(P[k]): the game min_q max_k CE(P[k], q)) or ``excess``
(KL - eps[k]: min_q max_k regret against the domain's expert). The q-step is unchanged (the
shifts do not depend on q), so the ``nll`` and ``excess`` runs are the exact fixed points SPD's
``nll`` and ``excess`` signals converge to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..divergences import entropy, kl
from ..errors import UserError
from ..gates import envelope, gate_from_model, support_mask
from ..problem import DiscreteProblem
from .projection import project_box_simplex

__all__ = ["Alg1Config", "Alg1Result", "algorithm1"]

#: q is kept >= LO_FLOOR where the envelope allows, so -P_lam / q stays finite.
LO_FLOOR = 1e-12

#: lam's gain is KL(P[k] || q) + shift[k]: 0, the entropy H(P[k]), or minus
#: eps[k] = KL(P[k] || E[k]).
SHIFTS = {
    "kl": lambda problem: np.zeros(problem.p),
    "nll": lambda problem: entropy(problem.P),
    "excess": lambda problem: -kl(problem.P, problem.E),
}


@dataclass
class Alg1Config:
    steps: int = 2000
    eta_lam: float = 1.0
    log_every: int = 10
    signal: str = "kl"

    def __post_init__(self):
        if self.signal not in SHIFTS:
            raise UserError(
                f"unknown lam signal '{self.signal}'; choose one of {', '.join(SHIFTS)}"
            )
        if self.steps < 1 or self.log_every < 1:
            raise UserError(
                f"steps and log_every must be >= 1 (got {self.steps}, {self.log_every})"
            )


@dataclass
class Alg1Result:
    """Averaged gate (N, p), its model q (N,), averaged lam, and the log (step, lam_k, max_kl)."""

    gate: np.ndarray
    model: np.ndarray
    lam: np.ndarray
    history: pd.DataFrame


def algorithm1(
    problem: DiscreteProblem,
    config: Alg1Config | None = None,
    support: str = "domains",
    device="cpu",
    evaluate=None,
) -> Alg1Result:
    """Run Algorithm 1 with exact gradients; ``evaluate(gate) -> dict`` adds log-step columns."""
    config = Alg1Config() if config is None else config
    mask = support_mask(problem, support)
    lo_np, hi_np = envelope(problem)
    kw = dict(device=device, dtype=torch.float64)
    P = torch.as_tensor(problem.P[:, mask], **kw)  # (p, n)
    hi = torch.as_tensor(hi_np[mask], **kw)  # (n,)
    lo = torch.minimum(torch.clamp(torch.as_tensor(lo_np[mask], **kw), min=LO_FLOOR), hi)
    neg_H = torch.special.xlogy(P, P).sum(dim=1)  # (p,) sum_x P log P
    shift = torch.as_tensor(SHIFTS[config.signal](problem), **kw)  # (p,)
    p = problem.p
    lam = torch.full((p,), 1.0 / p, **kw)
    q = project_box_simplex(lam @ P, lo, hi)
    q_sum, lam_sum, n_avg = torch.zeros_like(q), torch.zeros_like(lam), 0
    rows = []

    def to_gate(q_S):
        model = np.zeros(problem.N)
        model[mask] = q_S.cpu().numpy()
        return model, gate_from_model(model, problem.E, mask)

    for t in range(1, config.steps + 1):
        gain = neg_H - P @ torch.log(q)  # (p,) KL(P[k] || q)
        P_lam = lam @ P  # (n,)
        L = torch.max(P_lam / q**2)
        q = project_box_simplex(q + P_lam / (L * q), lo, hi)
        lam = torch.softmax(torch.log(lam) + config.eta_lam * (gain + shift), dim=0)
        if t > config.steps // 2:
            q_sum += q
            lam_sum += lam
            n_avg += 1
        if t % config.log_every == 0 or t == config.steps:
            row = {"step": t, "max_kl": float(gain.max())}
            row.update({f"lam_{k}": float(v) for k, v in enumerate(lam)})
            if evaluate is not None:
                q_now = q_sum / n_avg if n_avg else q
                row.update(evaluate(to_gate(q_now)[1]))
            rows.append(row)
    model, gate = to_gate(q_sum / n_avg)
    return Alg1Result(
        gate=gate, model=model, lam=(lam_sum / n_avg).cpu().numpy(), history=pd.DataFrame(rows)
    )
