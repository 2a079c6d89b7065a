"""Static-gate barrier (PAPER.md section 3; App. B, Thm 14 in v1).

With disjoint domains, every constant gate w has max_k KL(P[k] || w @ E) >= log sum_k exp(eps[k]),
with equality at w = sigma = softmax(eps). The best static gate is solved exactly (cvxpy, with
a Frank-Wolfe certificate); margin = V_static - logsumexp(eps). Readings: disjoint experts
(each on its domain's block) and leaking experts (each moves a fraction ``leak`` <= 1/2 of its
mass uniformly onto the other blocks), the latter searched over (leak, noise) with Nelder-Mead.
"""

from __future__ import annotations

from typing import NamedTuple

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

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a stronger,
#: false lower bound: {"scale": s} checks s * logsumexp(eps) (s > 1); {"max_plus_log_p": True}
#: checks max_k eps_k + log p (the uniform gate's value taken for the minimax).
MUTATION: dict = {}


def barrier(eps) -> float:
    """logsumexp(eps), the claimed lower bound (MUTATION applied)."""
    eps = np.asarray(eps)
    if MUTATION.get("max_plus_log_p"):
        b = float(eps.max() + np.log(len(eps)))
    else:
        b = static_barrier(eps)
    return MUTATION.get("scale", 1.0) * b


class Margin(NamedTuple):
    """One instance: V_static - barrier, its certificate, the value at sigma minus the barrier,
    and the two sides (barrier, V_static) for the tightness ratio."""

    margin: float
    certificate: float
    at_sigma: float
    sides: tuple


def margin(problem) -> Margin:
    """V_static - logsumexp(eps) with its certificate (NaNs when the conic solvers fail)."""
    eps = kl(problem.P, problem.E)
    lse = barrier(eps)
    st = static_solve(problem)
    if st is None:
        return Margin(np.nan, np.nan, np.nan, (np.nan, np.nan))
    at_sigma = float(kl(problem.P, sigma_weights(eps) @ problem.E).max())
    return Margin(
        st["value"] - lse, max(st["duality_gap"], 0.0), at_sigma - lse, (lse, st["value"])
    )


def _leaky(seed: int, z, p: int, N: int):
    sizes = {
        "p": p,
        "N": N,
        "noise": round(float(expit(z[1])), 6),
        "leak": round(float(0.5 * expit(z[0])), 6),
    }
    return instances.make("disjoint", seed, **sizes), sizes


def check(n: int, seed: int, fig_dir=None) -> list:
    disj, leak = (
        Tally(CLAIM, "disjoint domains, disjoint experts"),
        Tally(CLAIM, "disjoint domains, leaking experts"),
    )
    sigma_gap = []
    for d in draw_instances(n, seed, CLAIM, families=("disjoint",)):
        r = margin(d.problem)
        if np.isfinite(r.margin):
            disj.add(r.margin, str(d), r.certificate, d.problem, sides=r.sides)
            sigma_gap.append(abs(r.at_sigma))
        rng = np.random.default_rng(d.seed)
        sizes = dict(d.sizes, leak=float(np.round(rng.uniform(0.01, 0.5), 3)))
        prob = instances.make("disjoint", d.seed, **sizes)
        r = margin(prob)
        if np.isfinite(r.margin):
            leak.add(
                r.margin,
                f"instances.make('disjoint', {d.seed}, **{sizes})",
                r.certificate,
                prob,
                sides=r.sides,
            )
    for i in range(max(1, n // 25)):
        s = stable_seed(seed, CLAIM, "search", i)
        res = minimize(
            lambda z, s=s: np.nan_to_num(margin(_leaky(s, z, 2, 6)[0]).margin, nan=10.0),
            np.array([-2.0, -1.0]),
            method="Nelder-Mead",
            options={"maxiter": 40, "xatol": 1e-4},
        )
        prob, sizes = _leaky(s, res.x, 2, 6)
        r = margin(prob)
        if np.isfinite(r.margin):
            leak.add(
                r.margin,
                f"search: instances.make('disjoint', {s}, **{sizes})",
                r.certificate,
                prob,
                sides=r.sides,
            )
    return [
        disj.verdict(
            "KL(P_k||w@E) = eps_k - log w_k on disjoint blocks, so the minimax is "
            "logsumexp(eps), attained at sigma = softmax(eps): max_k KL(P_k||sigma@E) "
            f"matched logsumexp(eps) within {max(sigma_gap):.2g} nats."
        ),
        leak.verdict(
            "Leaked mass of the other experts lands on block k and raises w@E there, "
            "so a static gate can beat logsumexp(eps): the barrier needs disjoint "
            "experts, not only disjoint domains."
        ),
    ]
