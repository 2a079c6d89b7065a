"""One statistics convention for every comparison table and figure.

A comparison is always a *paired* difference ``d = a - b`` (e.g. gate minus monolith NLL per
token, so negative = ``a`` better), with a 95% interval:

- over replicates (seeds): Student-t interval on the per-replicate differences
  (`paired_t_interval`, scipy.stats.t);
- over test windows within one replicate: the per-window paired standard error
  (`per_window_paired_se`) and a paired bootstrap of the mean difference over windows
  (`paired_bootstrap`, the same windows resampled for both models).

- over seeds AND test windows when the seeds share one set of test windows
  (`two_level_interval`): the seeds' spread misses the error of the shared windows, which is
  added back (`two_level_interval`'s docstring);
- over a family of mixtures (`every_mixture`): "better on every mixture" is a family of tests,
  Holm-corrected (`holm`).

``a`` "wins" only when the whole interval lies below 0, ``b`` wins only when it lies above 0;
otherwise the comparison is undecided (`decide`). Tables show mean, s.e., the interval and n,
never a bare std.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

__all__ = [
    "Interval",
    "paired_t_interval",
    "per_window_paired_se",
    "paired_bootstrap",
    "decide",
    "paired_table",
    "LEVEL",
    "two_level_interval",
    "interval_pvalue",
    "holm",
    "MixtureFamily",
    "every_mixture",
    "worst_vertex_bootstrap",
]

#: The confidence level used everywhere.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean difference with its standard error and a two-sided interval.

    Attributes:
        mean: mean of the paired differences d = a - b.
        se: its standard error (NaN when n < 2).
        lo, hi: the interval at ``level`` (NaN when n < 2).
        n: number of pairs (replicates or windows).
        method: "t" (Student t over replicates), "window-se" (normal, per-window s.e.) or
            "bootstrap" (percentile, paired over windows).
        level: confidence level.
    """

    mean: float
    se: float
    lo: float
    hi: float
    n: int
    method: str
    level: float = LEVEL

    @property
    def verdict(self) -> str:
        return decide(self.lo, self.hi)

    def row(self, prefix: str = "") -> dict:
        d = asdict(self)
        d["verdict"] = self.verdict
        return {f"{prefix}{k}": v for k, v in d.items()}


def decide(lo: float, hi: float, a: str = "a", b: str = "b") -> str:
    """``f"{a} wins"`` if hi < 0, ``f"{b} wins"`` if lo > 0, else "undecided" (also for NaN)."""
    if np.isfinite(hi) and hi < 0:
        return f"{a} wins"
    if np.isfinite(lo) and lo > 0:
        return f"{b} wins"
    return "undecided"


def _diffs(a, b=None) -> np.ndarray:
    d = (
        np.asarray(a, dtype=np.float64)
        if b is None
        else np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    )
    if d.ndim != 1:
        raise ValueError(f"paired differences must be one-dimensional (got shape {d.shape})")
    if d.size == 0:
        raise ValueError("paired differences: no pairs")
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences: NaN or inf among the values")
    return d


def paired_t_interval(a, b=None, level: float = LEVEL) -> Interval:
    """Student-t interval for the mean of d = a - b over n replicates (``b`` None: ``a`` is d).

    mean +- t_{(1+level)/2, n-1} * s / sqrt(n), s the sample std (ddof 1). n = 1 gives NaN bounds.
    """
    d = _diffs(a, b)
    n, mean = d.size, float(d.mean())
    if n < 2:
        return Interval(mean, np.nan, np.nan, np.nan, n, "t", level)
    se = float(d.std(ddof=1) / np.sqrt(n))
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * se
    return Interval(mean, se, mean - half, mean + half, n, "t", level)


def per_window_paired_se(a, b=None, level: float = LEVEL) -> Interval:
    """Per-window paired standard error of the mean difference over test windows.

    ``a[i]``, ``b[i]``: the two models' NLL on the same window i; se = std(a - b) / sqrt(n); the
    interval is the normal one, mean +- z * se (windows are many).
    """
    d = _diffs(a, b)
    n, mean = d.size, float(d.mean())
    if n < 2:
        return Interval(mean, np.nan, np.nan, np.nan, n, "window-se", level)
    se = float(d.std(ddof=1) / np.sqrt(n))
    half = float(_st.norm.ppf(0.5 + level / 2)) * se
    return Interval(mean, se, mean - half, mean + half, n, "window-se", level)


def paired_bootstrap(
    a, b=None, rng=None, n_boot: int = 2000, level: float = LEVEL, groups=None
) -> Interval:
    """Paired bootstrap over test windows: percentile interval of the mean difference.

    Windows are resampled with replacement, the same indices for both models (the pairing).
    ``groups`` (optional, one label per window, e.g. the domain): resample within each group and
    weight the group means equally, so a mixture over domains keeps its weights.
    """
    d = _diffs(a, b)
    rng = np.random.default_rng(rng)
    if n_boot < 10:
        raise ValueError(f"n_boot must be >= 10 (got {n_boot})")
    if groups is None:
        groups = np.zeros(d.size, dtype=int)
    groups = np.asarray(groups)
    if groups.shape != d.shape:
        raise ValueError(
            f"groups must have one label per window (got {groups.shape} for {d.shape})"
        )
    labels = np.unique(groups)
    means = np.zeros(n_boot)
    point = 0.0
    for g in labels:
        dg = d[groups == g]
        idx = rng.integers(0, dg.size, size=(n_boot, dg.size))
        means += dg[idx].mean(axis=1) / len(labels)
        point += dg.mean() / len(labels)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(
        float(point), float(means.std(ddof=1)), float(lo), float(hi), d.size, "bootstrap", level
    )


def paired_table(
    rows,
    a: str,
    others,
    index: str = "lam",
    unit: str = "seed",
    value: str = "value",
    method: str = "method",
    level: float = LEVEL,
):
    """Long table of paired differences ``a - other`` per ``index`` value, over ``unit``
    (replicates), with the t interval and the verdict ("<a> wins" / "<other> wins" /
    "undecided"). Units missing for either method are dropped (pairs only).

    Columns: index, "a", "b", mean, se, lo, hi, n, verdict, cell ("mean [lo, hi]").
    """
    import pandas as pd

    wide = rows.pivot_table(index=[index, unit], columns=method, values=value, aggfunc="mean")
    out = []
    if a not in wide:
        return pd.DataFrame(
            columns=[index, "a", "b", "mean", "se", "lo", "hi", "n", "verdict", "cell"]
        )
    for other in others:
        if other not in wide or other == a:
            continue
        diff = (wide[a] - wide[other]).dropna()
        for key, d in diff.groupby(level=index):
            iv = paired_t_interval(d.to_numpy(), level=level)
            out.append(
                {
                    index: key,
                    "a": a,
                    "b": other,
                    "mean": iv.mean,
                    "se": iv.se,
                    "lo": iv.lo,
                    "hi": iv.hi,
                    "n": iv.n,
                    "verdict": decide(iv.lo, iv.hi, a, other),
                    "cell": f"{iv.mean:+.4f} [{iv.lo:+.4f}, {iv.hi:+.4f}]",
                }
            )
    return pd.DataFrame(out)


def two_level_interval(seed_means, window_se, level: float = LEVEL) -> Interval:
    """Interval for the mean over seeds of a paired difference when the seeds share test windows.

    Model: d_s = mu + W + S_s, W the error of the shared test windows (common to every seed),
    S_s the seed's own deviation. The mean over n seeds has variance Var(W) + Var(S) / n; the
    seeds' sample variance estimates only Var(S), so Var(W) is added from the per-seed window
    standard errors ``window_se`` (one per seed, `per_window_paired_se`). The s.e. of the
    seed-averaged windows is at most the mean of the per-seed s.e. (the s.d. of an average is at
    most the average s.d.), so that bound is used: conservative, never optimistic.
    se = sqrt(s^2 / n + mean(window_se)^2); Student t on n - 1 d.o.f. One seed gives no
    interval (NaN bounds): Var(S) cannot be estimated from it, and leaving it out would treat the
    seed effect as zero.
    """
    d = _diffs(seed_means)
    w = np.asarray(window_se, dtype=np.float64)
    if w.shape != d.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"window_se: one finite s.e. >= 0 per seed (got {w.tolist()})")
    n, mean = d.size, float(d.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), float("nan"), n, "seeds+windows", level)
    se = float(np.sqrt(float(d.var(ddof=1)) / n + w.mean() ** 2))
    q = float(_st.t.ppf(0.5 + level / 2, n - 1))
    return Interval(mean, se, mean - q * se, mean + q * se, n, "seeds+windows", level)


def interval_pvalue(iv: Interval) -> float:
    """Two-sided p-value of mean = 0 for an `Interval`: Student t on n - 1 d.o.f. for the
    replicate methods ("t", "seeds+windows" with n >= 2), the normal otherwise."""
    if not (np.isfinite(iv.se) and iv.se > 0):
        return float("nan") if not np.isfinite(iv.se) else float(iv.mean == 0.0)
    z = abs(iv.mean) / iv.se
    if iv.method in ("t", "seeds+windows") and iv.n >= 2:
        return float(2 * _st.t.sf(z, iv.n - 1))
    return float(2 * _st.norm.sf(z))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sorted p_(1) <= ... <= p_(m),
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)), returned in the input order. Rejecting
    where adj < alpha controls the family-wise error rate at alpha."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm: p-values must be a 1-d array in [0, 1] (got {p.tolist()})")
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


@dataclass(frozen=True)
class MixtureFamily:
    """ "a better than b on every mixture", tested mixture by mixture with Holm's correction.

    Attributes:
        verdict: "supported" (every mixture's difference is < 0 at Holm-adjusted p < alpha),
            "contradicted" (some mixture's difference is > 0 at Holm-adjusted p < alpha),
            "undecided" otherwise.
        labels, intervals: the mixtures and their (unadjusted) intervals.
        p_holm: Holm-adjusted two-sided p-values, in the order of ``labels``.
        alpha: the family-wise error rate.
    """

    verdict: str
    labels: tuple
    intervals: tuple
    p_holm: tuple
    alpha: float


def every_mixture(labels, intervals, alpha: float = 1 - LEVEL) -> MixtureFamily:
    """Holm-corrected verdict on d(lam) = a - b < 0 for every lam in ``labels``.

    A difference of per-token NLLs (cross-entropies) is linear in the mixture weights lam, so it is
    negative on the whole simplex iff it is negative at every vertex: the vertices (and the
    uniform mixture, which the paper also reports) make the family. Each mixture's two-sided
    p-value (`interval_pvalue`) is Holm-adjusted over the family; "contradicted" needs a mixture
    where b is better at the adjusted level, never a single unadjusted interval.
    """
    ivs = tuple(intervals)
    if len(ivs) == 0 or len(ivs) != len(labels):
        raise ValueError("every_mixture: one interval per mixture label, at least one")
    raw = np.array([interval_pvalue(iv) for iv in ivs])
    adj = holm(np.nan_to_num(raw, nan=1.0))
    means = np.array([iv.mean for iv in ivs])
    sig = adj < alpha
    if np.all(sig & (means < 0)):
        verdict = "supported"
    elif np.any(sig & (means > 0)):
        verdict = "contradicted"
    else:
        verdict = "undecided"
    return MixtureFamily(verdict, tuple(labels), ivs, tuple(float(x) for x in adj), alpha)


def worst_vertex_bootstrap(a, b, groups, rng, n_boot: int = 1000, level: float = 0.95) -> dict:
    """max_k mean_k(a) - max_k mean_k(b) over domains k (``groups``) and its paired bootstrap
    interval and s.e. (windows resampled within each domain, the same indices for a and b)."""
    a, b, groups = np.asarray(a, float), np.asarray(b, float), np.asarray(groups)
    labels = np.unique(groups)
    idx = [np.flatnonzero(groups == g) for g in labels]
    point = max(a[i].mean() for i in idx) - max(b[i].mean() for i in idx)
    rng = np.random.default_rng(rng)
    ma, mb = np.zeros((n_boot, len(idx))), np.zeros((n_boot, len(idx)))
    for j, i in enumerate(idx):
        pick = i[rng.integers(0, i.size, size=(n_boot, i.size))]
        ma[:, j], mb[:, j] = a[pick].mean(axis=1), b[pick].mean(axis=1)
    stat = ma.max(axis=1) - mb.max(axis=1)
    lo, hi = np.quantile(stat, [0.5 - level / 2, 0.5 + level / 2])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi), "se": float(stat.std(ddof=1))}
