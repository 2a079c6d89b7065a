"""The answer every exact solver returns, and the duality-gap certificate they share.

The certificate is solver-independent: the primal value ``max_k KL(P[k] || q)`` of the returned
model minus a *valid lower bound* on the minimax value, the Lagrangian dual function evaluated at
the returned lam (PAPER.md section 2; see `dual_bound`). A gap <= tol proves the value is within
tol of the minimax value, whatever the solver did.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Solution"]


@dataclass
class Solution:
    """Result of ``min_{g in G1} max_k KL(P[k] || pi_g)`` (or of a restricted variant).

    Attributes:
        status: "optimal" or "infeasible" (then ``reason`` says why and what to do).
        value: minimax value V* in nats (the primal value of ``model``).
        lam: (p,) least-favourable mixture lam*.
        per_domain_kl: (p,) KL(P[k] || model).
        model: (N,) pi_g* on the support, 0 off it; sums to 1.
        gate: (N, p) a row-stochastic gate realising ``model``.
        duality_gap: primal value minus the dual lower bound at ``lam``.
        method: "waterfill" or "cvxpy"; solver: the backend that answered.
        seconds: solve time, excluding start-up and I/O.
    """

    status: str
    method: str
    solver: str
    support: str
    value: float = float("nan")
    lam: np.ndarray | None = None
    per_domain_kl: np.ndarray | None = None
    model: np.ndarray | None = None
    gate: np.ndarray | None = None
    duality_gap: float = float("nan")
    seconds: float = 0.0
    reason: str = ""
    iterations: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    def to_json(self) -> dict:
        """The `modgen-bench solve --json` object (DESIGN.md, CLI contract)."""
        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        out = {
            "status": self.status,
            "value": None if not self.optimal else float(self.value),
            "lambda": arr(self.lam),
            "per_domain_kl": arr(self.per_domain_kl),
            "model": arr(self.model),
            "gate": arr(self.gate),
            "duality_gap": None if not self.optimal else float(self.duality_gap),
            "method": self.method,
            "solver": self.solver,
            "support": self.support,
            "seconds": float(self.seconds),
        }
        if self.reason:
            out["reason"] = self.reason
        return out
