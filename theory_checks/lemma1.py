"""Lemma 1 (PAPER.md section 1): G1 is non-empty, under both support conventions.

Margin of an instance = (the largest normaliser any gate reaches) - 1
                      = sum_{x in S} max_k E[k](x) - 1,
negative exactly when G1 is empty. The criterion itself is checked against an independent LP
(is there a row-stochastic gate with Z_g = 1?). The search minimises the margin over the leak
(capped at 1/2) and noise of the `leaking` family with Nelder-Mead, starting from experts that
barely leak (G1 non-empty).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize
from scipy.sparse import block_diag

from modgen_bench.gates import g1_feasibility, support_mask
from modgen_bench.provenance import stable_seed

from .draws import DEFAULT_FAMILIES, draw_instances, leaking_from_logits
from .verdict import Tally

CLAIM = "lemma1"
FAMILIES = DEFAULT_FAMILIES + ("leaking",)
LP_TOL = 1e-9
#: problems per block-diagonal LP (`g1_nonempty_lp_many`)
LP_CHUNK = 64

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated): {"mass_target": t}
#: asks for a gate with Z_g = t instead of 1 (t > 1: a false claim on experts that put exactly 1
#: on X0); {"envelope": "min"} takes the largest normaliser as sum_S min_k E[k] (a proof that
#: only looks at the pointwise-smallest expert).
MUTATION: dict = {}


def _lp_rows(problem, support: str) -> np.ndarray:
    """A_eq of the G1 LP in g (N x p, row-major): each row of g sums to 1 (N rows) and
    sum_{x in S} pi_g(x) = 1 (the last row); b_eq = 1."""
    mask = support_mask(problem, support)
    p, N = problem.p, problem.N
    A_eq = np.zeros((N + 1, N * p))
    for x in range(N):
        A_eq[x, x * p : (x + 1) * p] = 1.0
        if mask[x]:
            A_eq[N, x * p : (x + 1) * p] = problem.E[:, x]
    return A_eq


def _feasible(A_eq) -> bool:
    n_rows, n_vars = A_eq.shape
    res = linprog(
        np.zeros(n_vars), A_eq=A_eq, b_eq=np.ones(n_rows), bounds=(0, None), method="highs"
    )
    return res.status == 0


def g1_nonempty_lp(problem, support: str) -> bool:
    """Is there a gate g (rows on the simplex) with sum_{x in S} pi_g(x) = 1? An LP in g (N x p)."""
    return _feasible(_lp_rows(problem, support))


def g1_nonempty_lp_many(problems, support: str, chunk: int = LP_CHUNK) -> list[bool]:
    """`g1_nonempty_lp` of every problem. Up to ``chunk`` problems share one LP, block-diagonal
    in their gates (its rows never mix two problems, so it is feasible iff every block is):
    when it is, each problem's answer is yes; when not, each problem of the chunk gets its own
    LP. Problems the criterion calls empty go straight to their own LP."""
    out: list = [None] * len(problems)
    rows = [_lp_rows(pr, support) for pr in problems]
    hopeful = [i for i, pr in enumerate(problems) if margin(pr, support) >= 0]
    for start in range(0, len(hopeful), chunk):
        idx = hopeful[start : start + chunk]
        if len(idx) > 1 and _feasible(block_diag([rows[i] for i in idx], format="csr")):
            for i in idx:
                out[i] = True
    return [ok if ok is not None else _feasible(rows[i]) for i, ok in enumerate(out)]


def max_mass(problem, support: str) -> float:
    """sum_{x in S} max_k E[k](x), the largest normaliser a gate reaches (MUTATION applied)."""
    if MUTATION.get("envelope") == "min":
        return float(problem.E[:, support_mask(problem, support)].min(axis=0).sum())
    return g1_feasibility(problem, support).max_mass


def margin(problem, support: str) -> float:
    """sum_{x in S} max_k E[k](x) - 1: >= 0 iff G1 is non-empty (the exact criterion)."""
    return max_mass(problem, support) - MUTATION.get("mass_target", 1.0)


def _leaking(seed: int, z) -> tuple:
    """The adversarial search's leaking instance: p = 2, N = 6, support 3, leak up to 0.5."""
    return leaking_from_logits(seed, z, N=6, support=3, leak_max=0.5)


def search_counterexample(seed: int, support: str, tally: Tally) -> None:
    """Nelder-Mead on (logit leak, logit noise) of `leaking`, from leak ~ 0.002, noise ~ 0.05."""

    def f(z):
        return margin(_leaking(seed, z)[0], support)

    res = minimize(
        f,
        np.array([-6.0, -3.0]),
        method="Nelder-Mead",
        options={"maxiter": 300, "xatol": 1e-6, "fatol": 1e-10},
    )
    prob, sizes = _leaking(seed, res.x)
    args = ", ".join(f"{k}={v!r}" for k, v in sizes.items())
    tally.add(
        margin(prob, support), f"search: instances.make('leaking', {seed}, {args})", problem=prob
    )


def check(n: int, seed: int, fig_dir=None) -> list:
    tallies = {s: Tally(CLAIM, f"support={s}") for s in ("domains", "union")}
    searched = {s: Tally(CLAIM, f"support={s}, adversarial search") for s in ("domains", "union")}
    crit = Tally(CLAIM, "exact criterion vs LP")
    draws = list(draw_instances(n, seed, CLAIM, families=FAMILIES))
    lp = {s: g1_nonempty_lp_many([d.problem for d in draws], s) for s in tallies}
    for i, d in enumerate(draws):
        for support, tally in tallies.items():
            m = margin(d.problem, support)
            tally.add(
                m,
                str(d),
                problem=d.problem,
                sides=(MUTATION.get("mass_target", 1.0), max_mass(d.problem, support)),
            )
            agree = (m >= -LP_TOL) == lp[support][i]
            crit.add(0.0 if agree else -abs(m), f"{d} support={support}", certificate=LP_TOL)
    for i in range(max(1, n // 25)):
        for support, tally in searched.items():
            search_counterexample(stable_seed(seed, CLAIM, "search", i), support, tally)
    dom, uni = tallies["domains"], tallies["union"]
    return [
        dom.verdict(
            "Paper's convention (Z over X0 = union of domain supports). G1 is empty "
            "exactly when the experts put less than 1 on X0 even at their pointwise max; "
            "leaking experts make it so. Margin = sum_{X0} max_k E_k - 1."
        ),
        uni.verdict(
            "Repair: Z over X0 plus the experts' supports. sum max_k E_k >= sum E_0 = 1, "
            "so every constant gate is in G1 and the margin is never negative."
        ),
        searched["domains"].verdict(
            "Nelder-Mead over (leak, noise) of `leaking` (p = 2, N = 6, "
            "X0 = 3 outcomes) from a barely leaking, feasible start: it "
            "finds an empty G1."
        ),
        searched["union"].verdict(
            "The same search under the repair cannot push the margin below 0."
        ),
        crit.verdict(
            "G1 non-empty <=> sum_S max_k E_k >= 1, compared with an LP feasibility "
            "solve (highs) under both conventions; margin 0 when they agree."
        ),
    ]
