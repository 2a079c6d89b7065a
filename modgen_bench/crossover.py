"""Crossover of gate-vs-monolith in the capacity ratio r (issue 13, item 2).

Model, fitted by ordinary least squares over replicate-level cells (numpy.linalg.lstsq):

    delta = a + b log r + c log B  (+ e log r log B  with ``interaction``),

delta = gate minus monolith NLL per token (negative = gate better), r = the monolith's
non-embedding parameters over the experts' combined (`modgen_bench.matching`), B = the training
budget (steps or FLOPs; any positive unit, it enters through its log). The crossover at budget B
is the r where the fitted delta is 0:

    log r* = -(a + c log B) / (b + e log B).

Two intervals:
- `bootstrap_crossover`: replicates resampled within each (r, B) cell (so every cell keeps its
  design point); draws where the fitted slope in log r is not positive (no crossing in the
  expected direction) are counted and reported, not silently dropped into the quantiles. With a
  few seeds it is optimistic: a seed's gate and experts are shared by all of its cells (a seed
  effect the within-cell resampling treats as independent noise), and 3 seeds give few distinct
  resamples.
- `seed_crossover`: each seed's deltas fitted on their own, log r* per seed, and a Student t
  interval over seeds on log r* (scipy.stats.t; the suite's one rule for replicates,
  `modgen_bench.stats`). It carries the seed effect and is the interval to quote; a seed whose
  own fit has no upward crossing makes it undefined (NaN, counted).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CrossoverFit", "fit_delta", "crossover_r", "bootstrap_crossover", "seed_crossover"]


@dataclass
class CrossoverFit:
    """Least-squares coefficients (a, b, c[, e]) and the residual standard deviation."""

    coef: np.ndarray
    interaction: bool
    resid_sd: float
    n: int

    def predict(self, r, budget) -> np.ndarray:
        return _design(np.asarray(r, float), np.asarray(budget, float), self.interaction) @ self.coef

    def log_r_star(self, budget: float) -> float:
        """log r* at ``budget``; NaN when the slope in log r is <= 0 (no upward crossing)."""
        a, b, c = self.coef[:3]
        e = self.coef[3] if self.interaction else 0.0
        lb = np.log(budget)
        slope = b + e * lb
        return float(-(a + c * lb) / slope) if slope > 0 else float("nan")


def _design(r, budget, interaction: bool) -> np.ndarray:
    lr, lb = np.log(r), np.log(budget)
    cols = [np.ones_like(lr), lr, lb] + ([lr * lb] if interaction else [])
    return np.stack(cols, axis=-1)


def fit_delta(delta, r, budget, interaction: bool = False) -> CrossoverFit:
    """OLS fit of delta = a + b log r + c log B (+ e log r log B)."""
    delta, r, budget = (np.asarray(v, dtype=np.float64) for v in (delta, r, budget))
    if not (delta.shape == r.shape == budget.shape) or delta.ndim != 1:
        raise ValueError("delta, r and budget must be 1-d arrays of the same length")
    if np.any(r <= 0) or np.any(budget <= 0):
        raise ValueError("r and budget must be > 0 (they enter through their logs)")
    if not np.all(np.isfinite(delta)):
        raise ValueError(f"crossover fit: {int((~np.isfinite(delta)).sum())} delta values are "
                         f"not finite (a failed cell); fix or drop them first")
    X = _design(r, budget, interaction)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"crossover fit: the design (distinct r and budgets) has rank "
                         f"{np.linalg.matrix_rank(X)} < {X.shape[1]} coefficients")
    coef, *_ = np.linalg.lstsq(X, delta, rcond=None)
    resid = delta - X @ coef
    dof = max(1, len(delta) - X.shape[1])
    return CrossoverFit(coef, interaction, float(np.sqrt(resid @ resid / dof)), len(delta))


def crossover_r(fit: CrossoverFit, budget: float) -> float:
    """r* (NaN when the fit has no upward crossing at this budget)."""
    return float(np.exp(fit.log_r_star(budget)))


def bootstrap_crossover(delta, r, budget, at_budget: float, cells=None, n_boot: int = 1000,
                        rng=None, interaction: bool = False, level: float = 0.95) -> dict:
    """r* at ``at_budget`` with a percentile bootstrap interval.

    ``cells``: a label per row (default: the (r, budget) pair); rows are resampled with
    replacement within their cell. Returns {r_star, lo, hi, crossing_share, n_boot}: lo/hi are
    quantiles over the draws that cross (NaN when fewer than half of them do).
    """
    delta, r, budget = (np.asarray(v, dtype=np.float64) for v in (delta, r, budget))
    rng = np.random.default_rng(rng)
    fit = fit_delta(delta, r, budget, interaction)
    if cells is None:
        cells = [f"{a:.6g}|{b:.6g}" for a, b in zip(r, budget)]
    cells = np.asarray(cells)
    groups = [np.flatnonzero(cells == c) for c in np.unique(cells)]
    stars = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        try:
            f = fit_delta(delta[idx], r[idx], budget[idx], interaction)
        except ValueError:
            continue
        stars.append(f.log_r_star(at_budget))
    stars = np.asarray(stars)
    ok = stars[np.isfinite(stars)]
    share = ok.size / max(1, stars.size)
    if share >= 0.5:
        lo, hi = np.exp(np.quantile(ok, [0.5 - level / 2, 0.5 + level / 2]))
    else:
        lo = hi = float("nan")
    return {"r_star": crossover_r(fit, at_budget), "lo": float(lo), "hi": float(hi),
            "crossing_share": float(share), "n_boot": int(stars.size), "fit": fit}


def seed_crossover(delta, r, budget, seeds, at_budget: float, interaction: bool = False,
                   level: float = 0.95) -> dict:
    """r* at ``at_budget`` from each seed's own fit, with a t interval over seeds on log r*.

    Returns {r_star (exp of the mean log r*), lo, hi, n_seeds, n_crossing, per_seed}: r_star,
    lo and hi are NaN unless every seed's fit crosses upwards and there are >= 2 seeds (each
    seed's own r* is in per_seed). A non-finite delta is an error (`fit_delta`), never counted
    as a seed without a crossing.
    """
    from scipy import stats
    delta, r, budget, seeds = (np.asarray(v) for v in (delta, r, budget, seeds))
    per_seed = {}
    for s in np.unique(seeds):
        m = seeds == s
        per_seed[s.item() if hasattr(s, "item") else s] = fit_delta(
            delta[m], r[m], budget[m], interaction).log_r_star(at_budget)
    logs = np.array(list(per_seed.values()), dtype=float)
    crossing = np.isfinite(logs)
    n = logs.size
    out = {"n_seeds": int(n), "n_crossing": int(crossing.sum()),
           "per_seed": {k: float(np.exp(v)) for k, v in per_seed.items()},
           "r_star": float("nan"), "lo": float("nan"), "hi": float("nan")}
    if n >= 2 and crossing.all():
        mean, se = logs.mean(), logs.std(ddof=1) / np.sqrt(n)
        half = stats.t.ppf(0.5 + level / 2, n - 1) * se
        out.update(r_star=float(np.exp(mean)), lo=float(np.exp(mean - half)),
                   hi=float(np.exp(mean + half)))
    return out
