"""Loss-vs-test-mixture curves and gate-vs-retrain tables from tidy rows (PAPER.md section 5).

Rows are those of `modgen_bench.results.RunContext` with ``lam`` labels like '0.3,0.7'; the x axis
is the first component (the weight of the first domain; callers name it, e.g. "domain A").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["lam_a", "curve_stats", "lam_curves_figure", "win_loss_table"]


def lam_a(labels: pd.Series) -> pd.Series:
    """The weight of the first domain from lam labels '0.3,0.7' -> 0.3."""
    return labels.str.split(",").str[0].astype(float)


def curve_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, lam_A): mean, s.e. (std / sqrt(n)) and n over seeds."""
    g = rows.assign(lam_A=lam_a(rows["lam"])).groupby(["method", "lam_A"])["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = out["std"].fillna(0.0) / np.sqrt(out["n"])
    return out


#: suffixes marking a variant drawn in its base method's colour, dashed (e.g. gate_nll_logZ).
TWIN_SUFFIXES = ("_logZ",)


def _base(method: str) -> str:
    for suffix in TWIN_SUFFIXES:
        if method.endswith(suffix):
            return method[: -len(suffix)]
    return method


def lam_curves_figure(
    rows: pd.DataFrame,
    path,
    ylabel: str,
    title: str = "",
    xlabel: str = "test lam_0 (weight of the first domain)",
) -> Path:
    """One line per method (mean over seeds) with a ± s.e. band; single-lam methods as points.

    Readable by construction: a linear y axis with tick labels when the data
    span less than a decade (log otherwise), the legend outside the data, twins (``*_logZ``) in
    their base method's colour but dashed with hollow markers, PNG and SVG with alt text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..reporting.figures import auto_yscale, legend_outside, save_figure

    stats = curve_stats(rows)
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    bases = sorted({_base(m) for m in stats["method"]})
    colours = plt.get_cmap("tab20" if len(bases) > 10 else "tab10")
    colour = {b: colours(i % colours.N) for i, b in enumerate(bases)}
    markers = "osD^v<>phX*"
    alt = []
    for method, s in stats.groupby("method"):
        s = s.sort_values("lam_A")
        twin = method != _base(method)
        i = bases.index(_base(method))
        c = colour[_base(method)]
        style = dict(
            color=c,
            lw=1.6,
            ms=5,
            marker=markers[i % len(markers)],
            ls="--" if twin else ("" if len(s) == 1 else "-"),
            mfc="white" if twin else c,
        )
        if method.startswith("oracle-"):
            style.update(ls=":" if len(s) > 1 else "")
        ax.plot(s["lam_A"], s["mean"], label=method, **style)
        ax.fill_between(
            s["lam_A"], s["mean"] - s["se"], s["mean"] + s["se"], color=c, alpha=0.15, lw=0
        )
        alt.append(f"{method}: {s['mean'].min():.3g} to {s['mean'].max():.3g}")
    auto_yscale(ax, stats["mean"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax, title="method")
    return save_figure(
        fig, path, alt=f"{title or ylabel} against {xlabel}; y ranges per method: " + "; ".join(alt)
    )


def win_loss_table(rows: pd.DataFrame, gate: str, others: list[str]) -> pd.DataFrame:
    """Per lam_A: the gate's mean, and for each other method the seed-paired difference
    gate - other as 'mean ± s.e.' (negative: the gate is better); blank where other has no row."""
    rows = rows.assign(lam_A=lam_a(rows["lam"]))
    wide = rows.pivot_table(index=["lam_A", "seed"], columns="method", values="value")
    out = pd.DataFrame({gate: wide[gate].dropna().groupby("lam_A").mean()})
    for other in sorted(others):
        if other not in wide:
            continue
        diff = (wide[gate] - wide[other]).dropna().groupby("lam_A")
        m, se = diff.mean(), diff.std().fillna(0.0) / np.sqrt(diff.count())
        out[f"{gate} - {other}"] = [
            f"{m[k]:+.4f} ± {se[k]:.4f}" if k in m.index else "" for k in out.index
        ]
    return out.reset_index()
