"""Gates, gated models, the normaliser Z_g and the feasible set G1 (PAPER.md sections 1-2).

A gate is an (N, p) array ``g`` with rows on the simplex; the gated model is
``pi_g(x) = sum_k g(x, k) E[k](x)``. Two support conventions fix where ``pi_g`` must sum to 1:

- ``domains`` (the paper's): over X0, the union of the domains' supports. G1 can be empty
  (PAPER.md, Lemma 1's flaw): G1 is non-empty iff ``sum_{x in X0} max_k E[k](x) >= 1``.
- ``union`` (the repair): over X0 plus the experts' supports; constant gates are then in G1.

Only ``pi_g`` enters the objective, and ``pi_g(x)`` ranges over the envelope
``[min_k E[k](x), max_k E[k](x)]`` (PAPER.md section 2, "Reduction"), so solvers work with a model
``q`` on the support and `gate_from_model` turns it back into a gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .divergences import kl
from .problem import DiscreteProblem

__all__ = [
    "SUPPORTS",
    "FEAS_TOL",
    "support_mask",
    "envelope",
    "pi_g",
    "normaliser",
    "Feasibility",
    "g1_feasibility",
    "sum_target",
    "gate_from_model",
    "constant_gate",
    "evaluate_gate",
]

SUPPORTS = ("domains", "union")

#: The one slack on sum_S q = 1 used everywhere in the exact core: G1 counts as non-empty when
#: sum_S min_k E[k] <= 1 + FEAS_TOL and sum_S max_k E[k] >= 1 - FEAS_TOL; the water level aims at
#: the attainable sum nearest 1 (`sum_target`); a model is a primal point when its sum is within
#: FEAS_TOL of 1. Rows are taken as given (`problem.ROW_SUM_TOL` says which rows are accepted as
#: distributions; nothing is renormalised, since that would change the user's experts): FEAS_TOL
#: covers only the rounding of sums of N floats, so a floor or ceiling off by more is reported.
FEAS_TOL = 1e-9


def _check_support(support: str) -> None:
    if support not in SUPPORTS:
        raise ValueError(
            f"unknown support convention '{support}'; choose one of {', '.join(SUPPORTS)}"
        )


def support_mask(problem: DiscreteProblem, support: str = "domains") -> np.ndarray:
    """Boolean (N,) mask of the outcomes over which pi_g must sum to 1.

    ``domains``: X0 = union_k supp P[k];  ``union``: X0 plus union_k supp E[k].
    """
    _check_support(support)
    mask = np.any(problem.P > 0, axis=0)
    if support == "union":
        mask |= np.any(problem.E > 0, axis=0)
    return mask


def envelope(problem: DiscreteProblem) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) = (min_k E[k](x), max_k E[k](x)): the values pi_g(x) can take (PAPER.md
    section 2)."""
    return problem.E.min(axis=0), problem.E.max(axis=0)


def pi_g(gate, E) -> np.ndarray:
    """Gated model pi_g(x) = sum_k g(x, k) E[k](x). gate: (N, p), E: (p, N) -> (N,)."""
    return np.einsum(
        "nk,kn->n", np.asarray(gate, dtype=np.float64), np.asarray(E, dtype=np.float64)
    )


def normaliser(pi, mask) -> float:
    """Z_g = sum_{x in S} pi_g(x) over the support mask S (PAPER.md section 1)."""
    return float(np.sum(np.asarray(pi)[mask]))


@dataclass(frozen=True)
class Feasibility:
    """Whether G1 is non-empty under a support convention, with the reason when it is not."""

    feasible: bool
    max_mass: float  # sum_{x in S} max_k E[k](x): the largest Z any gate reaches
    reason: str = ""
    min_mass: float = 0.0  # sum_{x in S} min_k E[k](x): the smallest Z any gate reaches


def sum_target(min_mass: float, max_mass: float) -> float:
    """The attainable Z nearest 1: clip(1, min_mass, max_mass) (1 itself whenever attainable).

    Differs from 1 only by the rounding slack FEAS_TOL on a feasible problem; the exact core then
    solves with sum_S q = this target, so a one-point feasible set keeps a finite dual bound."""
    return min(max(1.0, min_mass), max_mass)


def g1_feasibility(
    problem: DiscreteProblem, support: str = "domains", mask=None, hi=None, lo=None
) -> Feasibility:
    """Exact test of Lemma 1: G1 is non-empty iff sum_S min_k E[k] <= 1 <= sum_S max_k E[k].

    Every gate has Z_g in [sum_S min_k E[k], sum_S max_k E[k]] and every value between is
    reached, so Z = 1 is reachable iff 1 lies in that interval, up to FEAS_TOL (PAPER.md section 1,
    the known flaw of Lemma 1). The upper end is short of 1 when the experts leak mass off the
    support; the lower end exceeds 1 only when expert rows sum to more than 1 (accepted within
    `problem.ROW_SUM_TOL`). ``mask`` (the support), ``hi`` and ``lo`` (max_k and min_k E[k]) may
    be passed when already computed.
    """
    _check_support(support)
    mask = support_mask(problem, support) if mask is None else mask
    if hi is None or lo is None:
        lo, hi = envelope(problem)
    mass, floor = float(hi[mask].sum()), float(lo[mask].sum())
    if mass < 1.0 - FEAS_TOL:
        reason = (
            f"G1 is empty under the '{support}' support convention: the experts put at most "
            f"{mass:.6g} < 1 of their mass on the support, so no gate reaches Z_g = 1 "
            f"(PAPER.md, Lemma 1's flaw)."
        )
        if support == "domains":
            reason += " Remedy: normalise over the experts' supports too (--support union)."
        return Feasibility(False, mass, reason, floor)
    if floor > 1.0 + FEAS_TOL:
        reason = (
            f"G1 is empty under the '{support}' support convention: the experts put at "
            f"least {floor:.10g} > 1 of their mass on the support (sum_x min_k E[k](x)), so "
            f"every gate has Z_g > 1. The expert rows sum to more than 1 (accepted within "
            f"the input tolerance, taken as given); renormalise the experts' rows."
        )
        return Feasibility(False, mass, reason, floor)
    return Feasibility(True, mass, "", floor)


def gate_from_model(q, E, mask=None) -> np.ndarray:
    """A row-stochastic gate g with pi_g = q on ``mask``, for any q with lo <= q <= hi there.

    Each row mixes the two extreme experts: g(x, argmax) = t, g(x, argmin) = 1 - t with
    t = (q - lo) / (hi - lo). Rows off the mask (irrelevant to the objective) are uniform.
    q: (N,), E: (p, N) -> (N, p).
    """
    E = np.asarray(E, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, N = E.shape
    if mask is None:
        mask = np.ones(N, dtype=bool)
    lo_k, hi_k = E.argmin(axis=0), E.argmax(axis=0)
    lo, hi = E[lo_k, np.arange(N)], E[hi_k, np.arange(N)]
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(width > 0, (q - lo) / width, 0.0)
    t = np.clip(t, 0.0, 1.0)
    gate = np.full((N, p), 1.0 / p)
    rows = np.flatnonzero(mask)
    gate[rows] = 0.0
    gate[rows, lo_k[rows]] += 1.0 - t[rows]
    gate[rows, hi_k[rows]] += t[rows]
    return gate


def constant_gate(w, N: int) -> np.ndarray:
    """The static gate g(x, .) = w for every x: (N, p)."""
    w = np.asarray(w, dtype=np.float64)
    return np.broadcast_to(w, (N, w.shape[0])).copy()


def evaluate_gate(problem: DiscreteProblem, gate, support: str = "domains") -> dict:
    """Exact grade of any gate: Z_g, per-domain KL of the normalised model, the worst case.

    The model is pi_g / Z_g restricted to the support, so KL(P[k] || pi_g / Z) =
    KL(P[k] || pi_g) + log Z (PAPER.md section 1). By the vertex property (section 2) the worst
    case over every mixture lam is max_k of the per-domain values. Methods propose; this grades.
    """
    mask = support_mask(problem, support)
    pi = pi_g(gate, problem.E)
    Z = normaliser(pi, mask)
    model = np.where(mask, pi, 0.0) / Z
    per_domain = kl(problem.P, model)
    return {
        "Z": Z,
        "per_domain_kl": per_domain,
        "worst_case_kl": float(per_domain.max()),
        "model": model,
    }
