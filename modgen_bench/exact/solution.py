"""The answer every exact solver returns, and the duality-gap certificate they share.

The certificate is solver-independent: the primal value ``max_k KL(P[k] || q)`` of the returned
model minus a *valid lower bound* on the minimax value, the Lagrangian dual function evaluated at
the returned lam (PAPER.md section 2; see `dual_bound`). A gap <= tol proves the value is within
tol of the minimax value, whatever the solver did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Solution"]


@dataclass
class Solution:
    """Result of ``min_{g in G1} max_k KL(P[k] || pi_g)`` (or of a restricted variant).

    Attributes:
        status: "optimal" (certificate within tolerance), "inaccurate" (no solver certified:
            ``extra["bound"]`` = [dual bound, primal value] brackets V*) or "infeasible" (then
            ``reason`` says why and what to do).
        value: minimax value V* in nats (the primal value of ``model``).
        lam: (p,) least-favourable mixture lam*.
        per_domain_kl: (p,) KL(P[k] || model).
        model: (N,) pi_g* on the support, 0 off it; sums to 1.
        gate: (N, p) a row-stochastic gate realising ``model``, built on first access.
        duality_gap: primal value minus the dual lower bound at ``lam``.
        method: a registered method (`paths.methods`: "waterfill", "cvxpy"), whose paths were
            tried first; solver: the path that answered ("closed-form", "waterfill-newton", a
            conic solver's name).
        w: the static gate's weights (`solve_static` only).
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
    _gate: np.ndarray | None = field(default=None, repr=False)
    duality_gap: float = float("nan")
    #: (p,) the weights of a constant gate (`solve_static`); None for the other solvers
    w: np.ndarray | None = None
    seconds: float = 0.0
    reason: str = ""
    iterations: int = 0
    extra: dict = field(default_factory=dict)
    gate_fn: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    #: rows ``s`` (a slice) of the gate, each row computed from its own outcome alone: lets
    #: `jsonout.write_json` stream the gate without building all N x p of it
    gate_rows: Callable[[slice], np.ndarray] | None = field(default=None, repr=False)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    @property
    def answered(self) -> bool:
        """True when there is a model to report (optimal or inaccurate), False when infeasible."""
        return self.status in ("optimal", "inaccurate") and self.model is not None

    @property
    def gate(self) -> np.ndarray | None:
        """(N, p) gate realising ``model``; built lazily (N x p floats the value does not need)."""
        if self._gate is None and self.gate_fn is not None:
            self._gate = self.gate_fn()
        return self._gate

    def to_json(self, arrays: bool = False) -> dict:
        """The `modgen-bench solve --json` object (DESIGN.md, CLI contract).

        ``arrays=True`` leaves "model" and "gate" as numpy arrays for `jsonout.write_json` to
        stream (no Python lists of N p floats); the default gives plain lists for `json.dumps`."""

        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        def big(a):
            return np.asarray(a) if arrays and a is not None else arr(a)

        if arrays and self._gate is None and self.gate_rows is not None and self.lam is not None:
            from .jsonout import RowBlocks

            gate = RowBlocks(len(self.model), len(self.lam), self.gate_rows)
        else:
            gate = big(self.gate)

        def num(v):  # JSON has no inf/NaN: null
            return float(v) if v is not None and np.isfinite(v) else None

        out = {
            "status": self.status,
            "value": num(self.value) if self.answered else None,
            "lambda": arr(self.lam),
            "per_domain_kl": None
            if self.per_domain_kl is None
            else [num(v) for v in self.per_domain_kl],
            "model": big(self.model),
            "gate": gate,
            "duality_gap": num(self.duality_gap) if self.answered else None,
            "method": self.method,
            "solver": self.solver,
            "support": self.support,
            "seconds": float(self.seconds),
        }
        if self.status == "inaccurate":
            out["bound"] = [num(b) for b in self.extra.get("bound", [None, None])]
        if self.reason:
            out["reason"] = self.reason
        return out
