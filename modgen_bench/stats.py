"""One statistics convention for every comparison table and figure (issue 13, item 6).

A comparison is always a *paired* difference ``d = a - b`` (e.g. gate minus monolith NLL per
token, so negative = ``a`` better), with a 95% interval:

- over replicates (seeds): Student-t interval on the per-replicate differences
  (`paired_t_interval`, scipy.stats.t);
- over test windows within one replicate: the per-window paired standard error
  (`per_window_paired_se`) and a paired bootstrap of the mean difference over windows
  (`paired_bootstrap`, the same windows resampled for both models).

``a`` "wins" only when the whole interval lies below 0, ``b`` wins only when it lies above 0;
otherwise the comparison is undecided (`decide`). Tables show mean, s.e., the interval and n,
never a bare std.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["Interval", "paired_t_interval", "per_window_paired_se", "paired_bootstrap", "decide",
           "paired_table", "LEVEL"]

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
    d = np.asarray(a, dtype=np.float64) if b is None else \
        np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
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


def paired_bootstrap(a, b=None, rng=None, n_boot: int = 2000, level: float = LEVEL,
                     groups=None) -> Interval:
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
        raise ValueError(f"groups must have one label per window (got {groups.shape} for {d.shape})")
    labels = np.unique(groups)
    means = np.zeros(n_boot)
    point = 0.0
    for g in labels:
        dg = d[groups == g]
        idx = rng.integers(0, dg.size, size=(n_boot, dg.size))
        means += dg[idx].mean(axis=1) / len(labels)
        point += dg.mean() / len(labels)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(float(point), float(means.std(ddof=1)), float(lo), float(hi), d.size,
                    "bootstrap", level)


def paired_table(rows, a: str, others, index: str = "lam", unit: str = "seed",
                 value: str = "value", method: str = "method", level: float = LEVEL):
    """Long table of paired differences ``a - other`` per ``index`` value, over ``unit``
    (replicates), with the t interval and the verdict ("<a> wins" / "<other> wins" /
    "undecided"). Units missing for either method are dropped (pairs only).

    Columns: index, "a", "b", mean, se, lo, hi, n, verdict, cell ("mean [lo, hi]").
    """
    import pandas as pd
    wide = rows.pivot_table(index=[index, unit], columns=method, values=value, aggfunc="mean")
    out = []
    if a not in wide:
        return pd.DataFrame(columns=[index, "a", "b", "mean", "se", "lo", "hi", "n", "verdict",
                                     "cell"])
    for other in others:
        if other not in wide or other == a:
            continue
        diff = (wide[a] - wide[other]).dropna()
        for key, d in diff.groupby(level=index):
            iv = paired_t_interval(d.to_numpy(), level=level)
            out.append({index: key, "a": a, "b": other, "mean": iv.mean, "se": iv.se,
                        "lo": iv.lo, "hi": iv.hi, "n": iv.n,
                        "verdict": decide(iv.lo, iv.hi, a, other),
                        "cell": f"{iv.mean:+.4f} [{iv.lo:+.4f}, {iv.hi:+.4f}]"})
    return pd.DataFrame(out)
