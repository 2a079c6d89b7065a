"""Instances for the checks: seeded draws from the library's families, and adversarial search.

Every random instance is ``instances.make(family, seed, **sizes)`` with ``seed`` a stable hash of
(run seed, claim, index), so the `worst_instance` string of a verdict regenerates it exactly.
The adversarial search maximises a violation with `scipy.optimize.minimize` (Nelder-Mead) over
softmax logits: of a mixture lam (`search_lam`) or of a whole problem (`problem_from_logits`).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

from modgen_bench import instances
from modgen_bench.problem import DiscreteProblem
from modgen_bench.provenance import stable_seed

__all__ = ["Draw", "draw_instances", "search_lam", "problem_from_logits", "lam_grid"]

#: Families and sizes the generic draws cycle through (all have experts covering X0).
DEFAULT_FAMILIES = ("dirichlet", "overlap", "disjoint", "identical", "near_deterministic", "face")


class Draw:
    """One drawn instance: the problem and the call that regenerates it."""

    def __init__(self, family: str, seed: int, sizes: dict):
        self.family, self.seed, self.sizes = family, seed, sizes
        self.problem = instances.make(family, seed, **sizes)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.sizes.items())
        return f"instances.make({self.family!r}, {self.seed}, {args})"


def _sizes(family: str, rng: np.random.Generator, p_range=(2, 4), n_range=(4, 16)) -> dict:
    p = int(rng.integers(max(p_range[0], 3 if family == "face" else 1), p_range[1] + 1))
    sizes = {"p": p, "N": int(rng.integers(max(n_range[0], p), n_range[1] + 1))}
    if family == "leaking":
        sizes["support"] = int(rng.integers(1, sizes["N"]))
        sizes["leak"] = float(np.round(rng.uniform(0.01, 0.6), 3))
    if family == "disjoint":
        sizes["leak"] = 0.0
    if family == "overlap":
        sizes["overlap"] = float(np.round(rng.uniform(0, 1), 3))
    return sizes


def draw_instances(n: int, seed: int, claim: str, families=DEFAULT_FAMILIES, **ranges):
    """Yield n `Draw`s cycling through ``families``; sizes drawn from (p_range, n_range)."""
    for i in range(n):
        family = families[i % len(families)]
        s = stable_seed(seed, claim, i)
        yield Draw(family, s, _sizes(family, np.random.default_rng(s), **ranges))


def lam_grid(p: int, steps: int) -> np.ndarray:
    """All lam on the p-simplex with coordinates in {0, 1/steps, ..., 1}: vertices included."""
    if p == 1:
        return np.ones((1, 1))
    pts = [np.array(c) for c in np.ndindex(*(steps + 1,) * (p - 1)) if sum(c) <= steps]
    return np.array([np.append(c, steps - c.sum()) for c in pts], dtype=np.float64) / steps


def search_lam(f, p: int, rng: np.random.Generator, starts: int = 3, grid_steps: int = 4):
    """Maximise f(lam) over the simplex: a grid (vertices included), then Nelder-Mead on
    softmax logits from the best grid points and random starts. Returns (lam, f(lam))."""
    cands = list(lam_grid(p, grid_steps))
    vals = [f(lam) for lam in cands]
    order = np.argsort(vals)[::-1]
    best_lam, best = cands[order[0]], vals[order[0]]
    if p == 1:
        return best_lam, best
    inits = [np.log(np.clip(cands[i], 1e-6, None)) for i in order[:starts]]
    inits += [rng.normal(size=p) for _ in range(starts)]
    for z0 in inits:
        res = minimize(
            lambda z: -f(softmax(z)),
            z0,
            method="Nelder-Mead",
            options={"maxiter": 120 * p, "xatol": 1e-7, "fatol": 1e-12},
        )
        if -res.fun > best:
            best_lam, best = softmax(res.x), -res.fun
    return best_lam, best


def problem_from_logits(theta, p: int, N: int) -> DiscreteProblem:
    """(P, E) = row-wise softmax of theta[:pN] and theta[pN:] (2 p N logits)."""
    theta = np.asarray(theta, dtype=np.float64).reshape(2, p, N)
    return DiscreteProblem.from_arrays(softmax(theta[0], axis=1), softmax(theta[1], axis=1))
