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
from modgen_bench.divergences import kl
from modgen_bench.exact import static_certificate
from modgen_bench.provenance import stable_seed

from .certified import STATIC_GAP_MAX, static_solve
from .draws import draw_instances
from .fits import softmax_rows
from .static_gates import static_minimax_ipm, static_minimax_many
from .verdict import Tally

CLAIM = "static_barrier"
#: the interior-point method's ~60 batched Newton steps cost ~13 ms however few the problems,
#: SLSQP ~2 ms per problem: smaller groups go to `static_solve`
IPM_MIN_BATCH = 8

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
        # log sum_k exp(eps_k) (`divergences.static_barrier`) in plain numpy: scipy's
        # logsumexp costs ~0.3 ms on these few numbers, once per search evaluation
        top = eps.max()
        b = float(top + np.log(np.exp(eps - top).sum()))
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
    return margins([problem])[0]


def margins(problems) -> list:
    """`margin` of every problem, the best static gates solved together (`static_solves`)."""
    out = []
    for problem, st in zip(problems, static_solves(problems), strict=True):
        eps = kl(problem.P, problem.E)
        lse = barrier(eps)
        at_sigma = float(kl(problem.P, softmax_rows(eps) @ problem.E).max())
        out.append(
            Margin(
                st["value"] - lse,
                max(st["duality_gap"], 0.0),
                at_sigma - lse,
                (lse, st["value"]),
            )
        )
    return out


def static_solves(problems) -> list:
    """`certified.static_solve` for every problem, those of one shape solved together (p = 2:
    `static_gates.static_minimax_many`, else, from IPM_MIN_BATCH problems on,
    `static_gates.static_minimax_ipm` from sigma = softmax(eps)),
    certified by `exact.static_certificate` at the best of their mixtures; any answer whose gap
    exceeds STATIC_GAP_MAX is solved by `static_solve` (SLSQP, then cvxpy)."""
    out: list = [None] * len(problems)
    groups: dict = {}
    for i, pr in enumerate(problems):
        groups.setdefault(pr.P.shape, []).append(i)
    for (p, _), idx in groups.items():
        P = np.stack([problems[i].P for i in idx])
        E = np.stack([problems[i].E for i in idx])
        if p == 2:
            fast = static_minimax_many(P, E)
        elif len(idx) < IPM_MIN_BATCH:
            continue  # `static_solve` below
        else:
            w0 = softmax_rows(np.stack([kl(problems[i].P, problems[i].E) for i in idx]))
            fast = static_minimax_ipm(P, E, w0)
        for j, i in enumerate(idx):
            w = fast["w"][j]
            certs = [static_certificate(problems[i], w, lam) for lam in fast["lams"][j]]
            best = int(np.argmax([bound for _, bound in certs]))
            primal, bound = certs[best]
            if primal - bound <= STATIC_GAP_MAX:
                lam = fast["lams"][j][best]
                out[i] = {"w": w, "lam": lam, "value": primal, "duality_gap": primal - bound}
    return [
        st if st is not None else static_solve(pr) for pr, st in zip(problems, out, strict=True)
    ]


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
    draws = list(draw_instances(n, seed, CLAIM, families=("disjoint",)))
    leaky = []
    for d in draws:
        rng = np.random.default_rng(d.seed)
        sizes = dict(d.sizes, leak=float(np.round(rng.uniform(0.01, 0.5), 3)))
        leaky.append((instances.make("disjoint", d.seed, **sizes), sizes))
    found = margins([d.problem for d in draws] + [prob for prob, _ in leaky])
    found, found_leak = found[: len(draws)], found[len(draws) :]
    for d, (prob, sizes), r, r_leak in zip(draws, leaky, found, found_leak, strict=True):
        if np.isfinite(r.margin):
            disj.add(r.margin, str(d), r.certificate, d.problem, sides=r.sides)
            sigma_gap.append(abs(r.at_sigma))
        if np.isfinite(r_leak.margin):
            leak.add(
                r_leak.margin,
                f"instances.make('disjoint', {d.seed}, **{sizes})",
                r_leak.certificate,
                prob,
                sides=r_leak.sides,
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
