"""Prop. 2 (PAPER.md section 3): the constant gate g = lam has KL(P_lam || lam @ E) <= lam . eps.

Margin = lam . eps - KL(P_lam || pi), minimised over lam by grid + Nelder-Mead on every instance.
Two readings of pi: the raw mixture lam @ E (a distribution on all outcomes, the paper's), and the
gate graded by the suite under the paper's convention (pi / Z on X0, `evaluate_gate`), which is
only smaller since Z <= 1 there. Tight where every P[k] / E[k] ratio is the same function of x
(e.g. each expert exact, or one domain). The search runs on the vectorised margins (`*_many`,
every instance of one p at once); the margin tallied at the lam it finds is the reference
formula's (`margin_raw`, `margin_graded`).
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import jsd, kl, mixture
from modgen_bench.gates import constant_gate, evaluate_gate
from modgen_bench.provenance import stable_seed

from .batched import Stack, jsd_many, kl_rows, mix
from .draws import DEFAULT_FAMILIES, draw_instances, random_starts, search_lam_many
from .verdict import Tally

CLAIM = "prop2"

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a plausible wrong
#: proof of a stronger bound: {"scale": s} checks s * lam . eps; {"minus_jsd": True} subtracts
#: JSD_lam (the term of Thms 3 and 6 carried over); {"min_eps": True} checks min_k eps_k
#: (convexity used the wrong way round).
MUTATION: dict = {}


def bound_many(st: Stack, rows, lams) -> np.ndarray:
    """lam . eps, the right-hand side of Prop. 2 (MUTATION applied), per row: (m,)."""
    eps = st.eps[rows]
    b = eps.min(axis=1) if MUTATION.get("min_eps") else np.sum(lams * eps, axis=1)
    if MUTATION.get("minus_jsd"):
        b = b - jsd_many(st, rows, lams)
    return MUTATION.get("scale", 1.0) * b


def actual_raw_many(st: Stack, rows, lams) -> np.ndarray:
    """KL(P_lam || lam @ E) per row: (m,)."""
    return kl_rows(mix(lams, st.P[rows]), mix(lams, st.E[rows]))


def actual_graded_many(st: Stack, rows, lams) -> np.ndarray:
    """KL(P_lam || pi_lam / Z) with pi_lam = lam @ E kept on X0 and Z its mass there (the gate
    lam graded in the paper's convention, as `gates.evaluate_gate(..., "domains")`): (m,)."""
    mask = st.mask[rows]
    pi = np.where(mask, mix(lams, st.E[rows]), 0.0)
    return kl_rows(mix(lams, st.P[rows]), pi / np.sum(pi, axis=1, keepdims=True))


def bound(problem, lam) -> float:
    """lam . eps, the right-hand side of Prop. 2 (MUTATION applied): the reference formula, on
    one lam, that the tallied margins use."""
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


#: (reading, its actual side on one lam, the same on many rows)
READINGS = (
    ("pi = lam @ E", actual_raw, actual_raw_many),
    ("gate lam graded on X0 (pi/Z)", actual_graded, actual_graded_many),
)


def worst_lams(problems, z_random) -> np.ndarray:
    """Per reading of READINGS and problem (all of one p): the lam minimising the margin, found
    by grid + Nelder-Mead from one grid point and the random logits z_random[r, b]
    (`search_lam_many` on the vectorised margins, both readings in one lockstep run):
    (R, B, p)."""
    st, R, B = Stack(problems), len(READINGS), len(problems)
    p = st.P.shape[1]

    def neg_margin(rows, lams):
        r, b = rows // B, rows % B
        out = -bound_many(st, b, lams)
        for k, (*_, actual) in enumerate(READINGS):
            out[r == k] += actual(st, b[r == k], lams[r == k])
        return out

    lam, _ = search_lam_many(neg_margin, p, z_random.reshape(R * B, -1, p), starts=1)
    return lam.reshape(R, B, p)


def check(n: int, seed: int, fig_dir=None) -> list:
    tallies = [Tally(CLAIM, reading) for reading, *_ in READINGS]
    draws = list(draw_instances(n, seed, CLAIM, families=DEFAULT_FAMILIES + ("leaking",)))
    z = []  # per instance, one start per reading from its own rng (the scalar search's order)
    for i, d in enumerate(draws):
        rng = np.random.default_rng(stable_seed(seed, CLAIM, i))
        z.append([random_starts(rng, d.problem.p, 1) for _ in READINGS])
    found = {}
    for p in sorted({d.problem.p for d in draws}):
        idx = [i for i, d in enumerate(draws) if d.problem.p == p]
        zs = np.array([z[i] for i in idx]).transpose(1, 0, 2, 3)  # (R, B, 1, p)
        lam = worst_lams([draws[i].problem for i in idx], zs)
        for j, i in enumerate(idx):
            found[i] = lam[:, j]
    for i, d in enumerate(draws):  # the margin at the lam found, by the reference formulas
        for tally, (_, actual, _), lam in zip(tallies, READINGS, found[i], strict=True):
            act, bnd = actual(d.problem, lam), bound(d.problem, lam)
            tally.add(
                bnd - act,
                f"{d} lam={np.round(lam, 4).tolist()}",
                problem=d.problem,
                sides=(act, bnd),
            )
    raw, graded = tallies
    return [
        raw.verdict(
            "Joint convexity of KL. Worst margin over lam per instance; tight "
            "instances are those with p = 1 or a vertex lam."
        ),
        graded.verdict("log Z <= 0 only helps. Includes leaking experts."),
    ]
