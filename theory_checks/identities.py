"""The identities of PAPER.md section 2, on random instances and mixtures.

- JSD identity: sum_k lam[k] KL(P[k] || pi) = KL(P_lam || pi) + JSD_lam, and 0 <= JSD_lam <= H(lam).
- Vertex property: max_lam KL(P_lam || pi) = max_k KL(P[k] || pi) (KL(P_lam || pi) is convex in
  lam); the max over lam is searched (grid + Nelder-Mead), never assumed.
- Equal values: the original game's value at the linearised game's optimal gate,
  max_lam KL(P_lam || pi_g*) (searched), equals V* of the linearised game. The original game
  has no saddle point, though: max_lam min_g KL(P_lam || pi_g) < V* in general (reported).
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import entropy, jsd, kl, mixture
from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.provenance import stable_seed

from .batched import Stack, kl_rows, mix
from .certified import certified_solve_many
from .draws import draw_instances, random_starts, search_lam_many
from .verdict import Tally

CLAIM = "identities"
SUPPORT = "union"

#: Mutation hook (theory_checks/mutations.py; empty = the claims as stated), each a plausible
#: wrong derivation: {"drop_jsd": True} drops JSD_lam from the identity; {"jsd_sign": -1} flips
#: its sign; {"jsd_uniform": True} weights the JSD uniformly instead of by lam; {"h_scale": s}
#: claims JSD_lam <= s H(lam) (s = 1/2: a factor 2 too strong).
MUTATION: dict = {}


def jsd_term(lam, P) -> float:
    """JSD_lam as the identity uses it (MUTATION applied)."""
    if MUTATION.get("drop_jsd"):
        return 0.0
    lam = np.asarray(lam)
    weights = np.full(len(lam), 1.0 / len(lam)) if MUTATION.get("jsd_uniform") else lam
    return MUTATION.get("jsd_sign", 1.0) * jsd(weights, P)


def jsd_residual(lam, P, pi) -> float:
    """sum_k lam[k] KL(P[k] || pi) - KL(P_lam || pi) - JSD_lam (0 by the identity)."""
    lam = np.asarray(lam)
    per = kl(P, pi)
    lin = float(lam[lam > 0] @ per[lam > 0])
    return lin - float(kl(mixture(lam, P), pi)) - jsd_term(lam, P)


def entropy_bound(lam) -> float:
    """H(lam), the upper end of 0 <= JSD_lam <= H(lam) (MUTATION applied)."""
    return MUTATION.get("h_scale", 1.0) * float(entropy(lam))


def maxmin_many(problems, z_random) -> np.ndarray:
    """max_lam min_{g in G1} KL(P_lam || pi_g) for problems of one p, searched over lam
    (`search_lam_many`, two starts from the grid and z_random (B, 2, p)); the inner min is exact
    (`InnerProblem.model`, one lam at a time): (B,)."""
    inners = [InnerProblem(pr, SUPPORT) for pr in problems]
    Ps = [pr.P[:, inner.mask] for pr, inner in zip(problems, inners, strict=True)]

    def F(rows, lams):
        return np.array(
            [
                float(kl(lam @ Ps[r], inners[r].model(lam)[0]))
                for r, lam in zip(rows, lams, strict=True)
            ]
        )

    return search_lam_many(F, problems[0].p, z_random, starts=2)[1]


def maxmin_original(problem, rng) -> float:
    """`maxmin_many` of one problem, its random starts drawn from ``rng``."""
    return float(maxmin_many([problem], random_starts(rng, problem.p, 2)[None])[0])


def top_kl_many(problems, pis, z_random, starts: int) -> np.ndarray:
    """The lam maximising KL(P_lam || pi) for every (problem, pi) pair, all problems of one p,
    searched by `search_lam_many` on the vectorised KL (grid, then Nelder-Mead from ``starts``
    grid points and the random logits z_random (B, starts, p)): (B, p)."""
    st = Stack(problems)
    pi = st.pad(pis)
    return search_lam_many(
        lambda rows, lams: kl_rows(mix(lams, st.P[rows]), pi[rows]),
        st.P.shape[1],
        z_random,
        starts=starts,
    )[0]


def _tops(draws, pis, zs) -> dict:
    """(i, j) -> max_lam KL(P_lam || pis[i][j]) of draw i (j < 3): the lam searched with
    zs[i][j] random starts (`top_kl_many`, together per p and start count), the value there by
    the reference formula `divergences.kl`."""
    out, groups = {}, {}
    for i, d in enumerate(draws):
        for j, z in enumerate(zs[i][:3]):
            groups.setdefault((d.problem.p, len(z)), []).append((i, j))
    for (p, starts), keys in groups.items():
        z = np.array([zs[i][j] for i, j in keys]).reshape(len(keys), -1, p)
        lams = top_kl_many(
            [draws[i].problem for i, _ in keys], [pis[i][j] for i, j in keys], z, starts
        )
        for (i, j), lam in zip(keys, lams, strict=True):
            out[i, j] = float(kl(mixture(lam, draws[i].problem.P), pis[i][j]))
    return out


def _no_saddle(draws, sols, zs) -> list[float]:
    """V* - max_lam min_g KL(P_lam || pi_g) of each draw (`maxmin_many` per p, starts zs[i][3])."""
    gaps = [0.0] * len(draws)
    for p in sorted({d.problem.p for d in draws}):
        idx = [i for i, d in enumerate(draws) if d.problem.p == p]
        z = np.array([zs[i][3] for i in idx]).reshape(len(idx), -1, p)
        for i, v in zip(idx, maxmin_many([draws[i].problem for i in idx], z), strict=True):
            gaps[i] = sols[i].value - v
    return gaps


def check(n: int, seed: int, fig_dir=None) -> list:
    ident, bounds, vertex, games = (
        Tally(CLAIM, r)
        for r in ("JSD identity", "0 <= JSD_lam <= H(lam)", "vertex property", "equal game values")
    )
    draws = list(draw_instances(n, seed, CLAIM))
    sols = certified_solve_many([d.problem for d in draws], SUPPORT)
    pis, zs = [], []  # per draw: (pi_g*, random pi, pi_g* again) and their random starts
    for i, (d, sol) in enumerate(zip(draws, sols, strict=True)):
        P, p = d.problem.P, d.problem.p
        rng = np.random.default_rng(stable_seed(seed, CLAIM, "lam", i))
        pi_rand = rng.dirichlet(np.ones(d.problem.N))
        for lam in (rng.dirichlet(np.full(p, 0.5)), np.eye(p)[0]):
            for pi in (pi_rand, sol.model):
                ident.add(-abs(jsd_residual(lam, P, pi)), f"{d} lam={lam.round(4).tolist()}")
            j, h = jsd(lam, P), entropy_bound(lam)
            bounds.add(min(j, h - j), f"{d} lam={lam.round(4).tolist()}", sides=(j, h))
        pis.append((sol.model, pi_rand, sol.model))
        # the random starts in the order the searches draw them: one each for the vertex
        # property at pi_g* and the random pi, two for the game value
        zs.append([random_starts(rng, p, k) for k in (1, 1, 2)])
        if i < max(3, n // 10):
            zs[-1].append(random_starts(rng, p, 2))  # for `maxmin_many`
    no_saddle = _no_saddle(draws[: max(3, n // 10)], sols, zs)
    tops = _tops(draws, pis, zs)
    for i, (d, sol) in enumerate(zip(draws, sols, strict=True)):
        for j, name in enumerate(("pi_g*", "random pi")):
            per, top = kl(d.problem.P, pis[i][j]), tops[i, j]
            vertex.add(float(per.max()) - top, f"{d} {name}", sides=(top, float(per.max())))
        games.add(-abs(tops[i, 2] - sol.value), str(d), certificate=sol.duality_gap)
    return [
        ident.verdict(
            "Residual of sum lam KL(P_k||pi) = KL(P_lam||pi) + JSD_lam for pi = the "
            "robust model and a random pi, lam random and at a vertex."
        ),
        bounds.verdict("Margin = min(JSD_lam, H(lam) - JSD_lam)."),
        vertex.verdict(
            "Margin = max_k KL(P_k||pi) - (max over lam found by grid + Nelder-Mead)."
            " The search never beats the vertices."
        ),
        games.verdict(
            "Original-game value at g*, max_lam KL(P_lam||pi_g*) (searched), vs V* of "
            "the linearised game; tolerance = duality gap. The original game has no "
            f"saddle point: V* - max_lam min_g KL(P_lam||pi_g) ranged over "
            f"[{min(no_saddle):.3g}, {max(no_saddle):.3g}] nats on {len(no_saddle)} "
            "instances (positive = its max-min is strictly below its min-max)."
        ),
    ]
