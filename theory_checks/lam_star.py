"""The least-favourable mixture lam* (PAPER.md section 4.4).

Equalisation: at the saddle point every k with lam*[k] > 0 attains max_k KL(P[k] || pi_g*). With a
certified solve, complementary slackness gives sum_k lam*[k] (V* - KL_k) = duality gap exactly
(the dual bound is sum_k lam*[k] KL(P[k] || q(lam*))), so the margin is
-max_k lam*[k] (V* - KL_k) and the tolerance is the gap.

lam* as data weights (DoReMi style): a static gate w trained on P_lam* (w = argmin_w
KL(P_lam* || w @ E), by EM) is graded by its worst case max_k KL(P[k] || w @ E) and compared with
(a) the best static gate (cvxpy, certified) and (b) the static gate trained on uniform weights.
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import entropy, kl, mixture

from .certified import certified_solve_many, static_solve
from .draws import draw_instances
from .fits import fit_mixture
from .verdict import Tally

CLAIM = "lam_star"
SUPPORT = "union"

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated): {"drop_weight": True}
#: drops lam*[k] from the equalisation margin (claims every domain attains V*, supported or not);
#: {"cross_entropy": True} equalises the cross-entropies E_{P_k}[-log pi_g*] instead of the KLs
#: (the raw-NLL reading of the game, which differs by each domain's entropy).
MUTATION: dict = {}


def equalisation_margin(sol, problem=None) -> float:
    """-max_k lam*[k] (V* - KL(P[k] || pi_g*)); 0 at an exact saddle point."""
    w = 1.0 if MUTATION.get("drop_weight") else sol.lam
    per = np.asarray(sol.per_domain_kl, dtype=np.float64)
    if MUTATION.get("cross_entropy"):
        per = per + entropy(problem.P)  # CE_k = KL_k + H(P_k)
        return -float(np.max(w * (per.max() - per)))
    return -float(np.max(w * (sol.value - per)))


def static_worst(problem, lam) -> tuple[float, float]:
    """(max_k KL(P[k] || w @ E), fit certificate) for w trained on P_lam."""
    w, cert = fit_mixture(mixture(lam, problem.P), problem.E)
    return float(kl(problem.P, w @ problem.E).max()), cert


def check(n: int, seed: int, fig_dir=None) -> list:
    eq = Tally(CLAIM, "equalisation on supp lam*")
    best = Tally(CLAIM, "lam* weights -> best static gate")
    unif = Tally(CLAIM, "lam* weights beat uniform weights")
    ratios, skipped = [], 0
    draws = list(draw_instances(n, seed, CLAIM))
    for d, sol in zip(
        draws, certified_solve_many([d.problem for d in draws], SUPPORT), strict=True
    ):
        eq.add(equalisation_margin(sol, d.problem), str(d), sol.duality_gap, d.problem)
        if d.problem.p < 2:
            continue
        st = static_solve(d.problem)
        if st is None:
            skipped += 1
            continue
        w_star, c1 = static_worst(d.problem, sol.lam)
        w_unif, c2 = static_worst(d.problem, np.full(d.problem.p, 1.0 / d.problem.p))
        cert = max(st["duality_gap"], 0.0) + c1 + c2
        best.add(st["value"] - w_star, str(d), cert, d.problem, sides=(w_star, st["value"]))
        unif.add(w_unif - w_star, str(d), cert, d.problem, sides=(w_star, w_unif))
        if w_unif - st["value"] > 1e-6:
            ratios.append((w_star - st["value"]) / (w_unif - st["value"]))
    share = (
        f"lam* weights close {100 * (1 - np.median(ratios)):.0f}% (median) of the gap "
        f"between uniform weights and the best static gate, over {len(ratios)} instances "
        f"with a gap. {skipped} instances skipped (conic solvers inaccurate)."
        if ratios
        else ""
    )
    return [
        eq.verdict(
            "Margin = -max_k lam*_k (V* - KL_k), tolerance = duality gap (complementary slackness)."
        ),
        best.verdict(
            "Training a static gate on P_lam* (the gated game's least-favourable "
            "mixture) is not the static minimax gate in general. " + share
        ),
        unif.verdict(
            "Margin = worst case with uniform data weights minus worst case with lam* "
            "weights (positive: lam* helps). " + share
        ),
    ]
