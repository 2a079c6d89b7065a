"""Loss-vs-test-mixture curves and gate-vs-retrain tables from tidy rows (PAPER.md section 5).

Rows are those of `modgen_bench.results.RunContext` with ``lam`` labels like '0.3,0.7'; the x axis
is the first component (the weight of domain 0).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["lam_a", "curve_stats", "lam_curves_figure", "win_loss_table"]


def lam_a(labels: pd.Series) -> pd.Series:
    """The weight of domain 0 from lam labels '0.3,0.7' -> 0.3."""
    return labels.str.split(",").str[0].astype(float)


def curve_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, lam_A): mean, s.e. (std / sqrt(n)) and n over seeds."""
    g = rows.assign(lam_A=lam_a(rows["lam"])).groupby(["method", "lam_A"])["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = out["std"].fillna(0.0) / np.sqrt(out["n"])
    return out


def lam_curves_figure(rows: pd.DataFrame, path, ylabel: str, title: str = "") -> Path:
    """One line per method (mean over seeds) with a ± s.e. band; single-lam methods as points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = curve_stats(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, s in stats.groupby("method"):
        s = s.sort_values("lam_A")
        style = "o--" if method.startswith("oracle-") else "-"
        line, = ax.plot(s["lam_A"], s["mean"], style, label=method, lw=1.5, ms=4)
        ax.fill_between(s["lam_A"], s["mean"] - s["se"], s["mean"] + s["se"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("test lam (weight of domain 0)")
    ax.set_ylabel(ylabel)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
        out[f"{gate} - {other}"] = [f"{m[l]:+.4f} ± {se[l]:.4f}" if l in m.index else "" for l in out.index]
    return out.reset_index()
