"""Static-gate barrier (PAPER.md section 3; App. B, Thm 14 in v1).

With disjoint domains, every constant gate w has max_k KL(P[k] || w @ E) >= log sum_k exp(eps[k]),
with equality at w = sigma = softmax(eps). The best static gate is solved exactly (cvxpy, with
a Frank-Wolfe certificate); margin = V_static - logsumexp(eps). Readings: disjoint experts
(each on its domain's block) and leaking experts (each moves a fraction ``leak`` <= 1/2 of its
mass uniformly onto the other blocks), the latter searched over (leak, noise) with Nelder-Mead.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from modgen_bench import instances
from modgen_bench.divergences import kl, sigma_weights, static_barrier
from modgen_bench.provenance import stable_seed

from .certified import static_solve
from .draws import draw_instances
from .verdict import Tally

CLAIM = "static_barrier"

#: Mutation hook for tests/test_theory_mutations.py (empty = the claim as stated): {"scale": s} checks the
#: barrier s * logsumexp(eps) (s > 1: a false, stronger lower bound).
MUTATION: dict = {}


def margin(problem) -> tuple[float, float, float]:
    """(V_static - logsumexp(eps), certificate, max_k KL(P_k || sigma @ E) - logsumexp(eps));
    NaNs when the conic solvers fail on the instance."""
    eps = kl(problem.P, problem.E)
    lse = static_barrier(eps) * MUTATION.get("scale", 1.0)
    st = static_solve(problem)
    if st is None:
        return np.nan, np.nan, np.nan
    at_sigma = float(kl(problem.P, sigma_weights(eps) @ problem.E).max())
    return st["value"] - lse, max(st["duality_gap"], 0.0), at_sigma - lse


def _leaky(seed: int, z, p: int, N: int):
    sizes = {"p": p, "N": N, "noise": round(float(expit(z[1])), 6),
             "leak": round(float(0.5 * expit(z[0])), 6)}
    return instances.make("disjoint", seed, **sizes), sizes


def check(n: int, seed: int, fig_dir=None) -> list:
    disj, leak = Tally(CLAIM, "disjoint domains, disjoint experts"), \
        Tally(CLAIM, "disjoint domains, leaking experts")
    sigma_gap = []
    for i, d in enumerate(draw_instances(n, seed, CLAIM, families=("disjoint",))):
        m, cert, at_sigma = margin(d.problem)
        if np.isfinite(m):
            disj.add(m, str(d), cert, d.problem)
            sigma_gap.append(abs(at_sigma))
        rng = np.random.default_rng(d.seed)
        sizes = dict(d.sizes, leak=float(np.round(rng.uniform(0.01, 0.5), 3)))
        prob = instances.make("disjoint", d.seed, **sizes)
        m, cert, _ = margin(prob)
        if np.isfinite(m):
            leak.add(m, f"instances.make('disjoint', {d.seed}, **{sizes})", cert, prob)
    for i in range(max(1, n // 25)):
        s = stable_seed(seed, CLAIM, "search", i)
        res = minimize(lambda z: np.nan_to_num(margin(_leaky(s, z, 2, 6)[0])[0], nan=10.0),
                       np.array([-2.0, -1.0]), method="Nelder-Mead",
                       options={"maxiter": 40, "xatol": 1e-4})
        prob, sizes = _leaky(s, res.x, 2, 6)
        m, cert, _ = margin(prob)
        if np.isfinite(m):
            leak.add(m, f"search: instances.make('disjoint', {s}, **{sizes})", cert, prob)
    return [
        disj.verdict("KL(P_k||w@E) = eps_k - log w_k on disjoint blocks, so the minimax is "
                     "logsumexp(eps), attained at sigma = softmax(eps): max_k KL(P_k||sigma@E) "
                     f"matched logsumexp(eps) within {max(sigma_gap):.2g} nats."),
        leak.verdict("Leaked mass of the other experts lands on block k and raises w@E there, "
                     "so a static gate can beat logsumexp(eps): the barrier needs disjoint "
                     "experts, not only disjoint domains."),
    ]
