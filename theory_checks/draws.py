"""Instances for the checks: seeded draws from the library's families, and adversarial search.

Every random instance is ``instances.make(family, seed, **sizes)`` with ``seed`` a stable hash of
(run seed, claim, index), so the `worst_instance` string of a verdict regenerates it exactly.
The adversarial search maximises a violation with Nelder-Mead over softmax logits: of a mixture
lam (`search_lam`, `search_lam_many`: many functions and starts at once, in lockstep, scipy's
method step for step) or of a whole problem (`problem_from_logits`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from modgen_bench import instances
from modgen_bench.problem import DiscreteProblem
from modgen_bench.provenance import stable_seed

__all__ = [
    "Draw",
    "draw_instances",
    "search_lam",
    "search_lam_many",
    "nelder_mead_many",
    "random_starts",
    "softmax_rows",
    "problem_from_logits",
    "leaking_from_logits",
    "lam_grid",
]

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


def softmax_rows(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax exp(z - max z) / sum exp(z - max z), the same operations as
    `scipy.special.softmax` on one row (bitwise equal), without its per-call overhead."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _initial_simplex(z0: np.ndarray) -> np.ndarray:
    """scipy's Nelder-Mead start: z0 and z0 with coordinate k scaled by 1.05 (0.00025 if 0)."""
    B, n = z0.shape
    sim = np.repeat(z0[:, None, :], n + 1, axis=1)  # (B, n + 1, n)
    for k in range(n):
        sim[:, k + 1, k] = np.where(z0[:, k] != 0, (1 + 0.05) * z0[:, k], 0.00025)
    return sim


def _sort(sim: np.ndarray, fsim: np.ndarray):
    ind = np.argsort(fsim, axis=1)
    return np.take_along_axis(sim, ind[:, :, None], 1), np.take_along_axis(fsim, ind, 1)


def _step(f, rows, sim, fsim):
    """One Nelder-Mead iteration (reflect, expand, contract or shrink) of every simplex in
    ``sim`` (B, n + 1, n), sorted by ``fsim``; the rules and arithmetic of scipy's."""
    n = sim.shape[2]
    xbar = sim[:, 0].copy()
    for j in range(1, n):  # scipy's np.add.reduce over n rows adds them in order
        xbar += sim[:, j]
    xbar /= n
    worst = sim[:, -1]
    xr = 2.0 * xbar - worst
    fxr = f(rows, xr)
    expand = fxr < fsim[:, 0]
    accept = ~expand & (fxr < fsim[:, -2])
    outside = ~expand & ~accept & (fxr < fsim[:, -1])
    inside = ~expand & ~accept & ~outside
    x2 = np.where(
        expand[:, None],
        3.0 * xbar - 2.0 * worst,
        np.where(outside[:, None], 1.5 * xbar - 0.5 * worst, 0.5 * xbar + 0.5 * worst),
    )
    f2 = np.full(len(rows), np.nan)
    need = ~accept
    if need.any():
        f2[need] = f(rows[need], x2[need])
    use2 = (expand & (f2 < fxr)) | (outside & (f2 <= fxr)) | (inside & (f2 < fsim[:, -1]))
    shrink = (outside | inside) & ~use2
    keep = ~shrink
    sim[keep, -1] = np.where(use2[keep, None], x2[keep], xr[keep])
    fsim[keep, -1] = np.where(use2[keep], f2[keep], fxr[keep])
    if shrink.any():
        s = sim[shrink]
        s[:, 1:] = s[:, :1] + 0.5 * (s[:, 1:] - s[:, :1])
        sim[shrink] = s
        fsim[shrink, 1:] = f(np.repeat(rows[shrink], n), s[:, 1:].reshape(-1, n)).reshape(-1, n)
    return _sort(sim, fsim)


def nelder_mead_many(f, z0, maxiter: int, xatol: float = 1e-4, fatol: float = 1e-4):
    """Minimise B functions at once with Nelder-Mead, in lockstep: scipy's method (its initial
    simplex, coefficients 1, 2, 1/2, 1/2, its tests and stopping rule at ``maxiter``
    iterations), so each run takes the same path as `scipy.optimize.minimize(method=
    "Nelder-Mead")` would, given the same values.

    f(rows, X) -> (m,) evaluates run ``rows[i]``'s objective at X[i] (X: (m, n)). z0: (B, n).
    Returns (x, fun): (B, n) best points and (B,) np.min of each final simplex's values (NaN
    when one is NaN, as scipy's)."""
    z0 = np.asarray(z0, dtype=np.float64)
    B, n = z0.shape
    sim = _initial_simplex(z0)
    fsim = np.asarray(f(np.repeat(np.arange(B), n + 1), sim.reshape(-1, n)), dtype=np.float64)
    sim, fsim = _sort(sim, fsim.reshape(B, n + 1))
    active = np.arange(B)
    for _ in range(1, maxiter):
        s, fs = sim[active], fsim[active]
        small_x = np.max(np.abs(s[:, 1:] - s[:, :1]), axis=(1, 2)) <= xatol
        small_f = np.max(np.abs(fs[:, :1] - fs[:, 1:]), axis=1) <= fatol
        running = ~(small_x & small_f)
        active = active[running]
        if not len(active):
            break
        sim[active], fsim[active] = _step(f, active, s[running], fs[running])
    return sim[:, 0], np.min(fsim, axis=1)


def random_starts(rng: np.random.Generator, p: int, starts: int) -> np.ndarray:
    """The random logits `search_lam` starts from: (starts, p) normal draws, none when p = 1."""
    if p == 1:
        return np.zeros((0, 1))
    return np.array([rng.normal(size=p) for _ in range(starts)])


def search_lam_many(F, p: int, z_random, starts: int = 3, grid_steps: int = 4):
    """Maximise B functions of lam over the p-simplex at once: each on a grid (vertices
    included), then Nelder-Mead on softmax logits from its ``starts`` best grid points and its
    ``starts`` random logits ``z_random[b]`` (`random_starts`), all runs in lockstep
    (`nelder_mead_many`). F(rows, lams) -> (m,): function ``rows[i]`` at lams[i] ((m, p)).
    Returns (lam (B, p), value (B,)) with the first best of grid and runs, as `search_lam`."""
    z_random = np.asarray(z_random, dtype=np.float64)
    B = len(z_random)
    grid = lam_grid(p, grid_steps)
    g = len(grid)
    vals = np.asarray(F(np.repeat(np.arange(B), g), np.tile(grid, (B, 1))), dtype=np.float64)
    vals = vals.reshape(B, g)
    order = np.argsort(vals, axis=1)[:, ::-1]
    rows = np.arange(B)
    best_lam, best = grid[order[:, 0]], vals[rows, order[:, 0]]
    if p == 1 or B == 0:
        return best_lam, best
    z0 = np.concatenate(
        [np.log(np.clip(grid[order[:, :starts]], 1e-6, None)), z_random[:, :starts]], axis=1
    )  # (B, 2 starts, p): runs of one function are consecutive
    runs = z0.shape[1]
    x, fun = nelder_mead_many(
        lambda r, z: -np.asarray(F(r // runs, softmax_rows(z)), dtype=np.float64),
        z0.reshape(-1, p),
        maxiter=120 * p,
        xatol=1e-7,
        fatol=1e-12,
    )
    x, fun = x.reshape(B, runs, p), fun.reshape(B, runs)
    for j in range(runs):  # in start order: a later run must be strictly better to win
        better = -fun[:, j] > best
        best = np.where(better, -fun[:, j], best)
        best_lam = np.where(better[:, None], softmax_rows(x[:, j]), best_lam)
    return best_lam, best


def search_lam(f, p: int, rng: np.random.Generator, starts: int = 3, grid_steps: int = 4):
    """Maximise a scalar f(lam) over the simplex (`search_lam_many` with one function): a grid
    (vertices included), then Nelder-Mead on softmax logits from the best grid points and random
    starts drawn from ``rng``. Returns (lam, f(lam))."""

    def F(rows, lams):
        return np.array([f(lam) for lam in lams], dtype=np.float64)

    z = random_starts(rng, p, starts)
    lam, val = search_lam_many(F, p, z[None], starts, grid_steps)
    return lam[0], val[0]


def problem_from_logits(theta, p: int, N: int) -> DiscreteProblem:
    """(P, E) = row-wise softmax of theta[:pN] and theta[pN:] (2 p N logits)."""
    theta = np.asarray(theta, dtype=np.float64).reshape(2, p, N)
    return DiscreteProblem.from_arrays(softmax_rows(theta[0]), softmax_rows(theta[1]))


def leaking_from_logits(seed: int, z, N: int, support: int, leak_max: float) -> tuple:
    """(problem, sizes) of the p = 2 `leaking` family from two logits: leak = leak_max expit(z[0]),
    noise = expit(z[1]), each rounded to 6 digits so that ``sizes`` regenerate the instance (the
    adversarial searches over leaking experts)."""
    sizes = {
        "p": 2,
        "N": N,
        "support": support,
        "leak": round(float(leak_max * expit(z[0])), 6),
        "noise": round(float(expit(z[1])), 6),
    }
    return instances.make("leaking", seed, **sizes), sizes
