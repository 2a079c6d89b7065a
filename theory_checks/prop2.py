"""Prop. 2 (PAPER.md section 3): the constant gate g = lam has KL(P_lam || lam @ E) <= lam . eps.

Margin = lam . eps - KL(P_lam || pi), minimised over lam by grid + Nelder-Mead on every instance.
Two readings of pi: the raw mixture lam @ E (a distribution on all outcomes, the paper's), and the
gate graded by the suite under the paper's convention (pi / Z on X0, `evaluate_gate`), which is
only smaller since Z <= 1 there. Tight where every P[k] / E[k] ratio is the same function of x
(e.g. each expert exact, or one domain).
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import jsd, kl, mixture
from modgen_bench.gates import constant_gate, evaluate_gate
from modgen_bench.provenance import stable_seed

from .draws import DEFAULT_FAMILIES, draw_instances, search_lam
from .verdict import Tally

CLAIM = "prop2"

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a plausible wrong
#: proof of a stronger bound: {"scale": s} checks s * lam . eps; {"minus_jsd": True} subtracts
#: JSD_lam (the term of Thms 3 and 6 carried over); {"min_eps": True} checks min_k eps_k
#: (convexity used the wrong way round).
MUTATION: dict = {}


def bound(problem, lam) -> float:
    """lam . eps, the right-hand side of Prop. 2 (MUTATION applied)."""
    eps = kl(problem.P, problem.E)
    b = float(eps.min()) if MUTATION.get("min_eps") else float(lam @ eps)
    if MUTATION.get("minus_jsd"):
        b -= jsd(lam, problem.P)
    return MUTATION.get("scale", 1.0) * b


def actual_raw(problem, lam) -> float:
    """KL(P_lam || lam @ E)."""
    return float(kl(mixture(lam, problem.P), mixture(lam, problem.E)))


def actual_graded(problem, lam) -> float:
    """KL(P_lam || pi_lam / Z) with Z over X0 (the gate in the paper's convention)."""
    model = evaluate_gate(problem, constant_gate(lam, problem.N), "domains")["model"]
    return float(kl(mixture(lam, problem.P), model))


def margin_raw(problem, lam) -> float:
    """lam . eps - KL(P_lam || lam @ E)."""
    return bound(problem, lam) - actual_raw(problem, lam)


def margin_graded(problem, lam) -> float:
    """lam . eps - KL(P_lam || pi_lam / Z)."""
    return bound(problem, lam) - actual_graded(problem, lam)


def check(n: int, seed: int, fig_dir=None) -> list:
    raw, graded = Tally(CLAIM, "pi = lam @ E"), Tally(CLAIM, "gate lam graded on X0 (pi/Z)")
    draws = draw_instances(n, seed, CLAIM, families=DEFAULT_FAMILIES + ("leaking",))
    for i, d in enumerate(draws):
        rng = np.random.default_rng(stable_seed(seed, CLAIM, i))
        for tally, fn, act in (
            (raw, margin_raw, actual_raw),
            (graded, margin_graded, actual_graded),
        ):
            lam, worst = search_lam(
                lambda lam, fn=fn, prob=d.problem: -fn(prob, lam), d.problem.p, rng, starts=1
            )
            tally.add(
                -worst,
                f"{d} lam={np.round(lam, 4).tolist()}",
                problem=d.problem,
                sides=(act(d.problem, lam), bound(d.problem, lam)),
            )
    return [
        raw.verdict(
            "Joint convexity of KL. Worst margin over lam per instance; tight "
            "instances are those with p = 1 or a vertex lam."
        ),
        graded.verdict("log Z <= 0 only helps. Includes leaking experts."),
    ]
