"""The real-text report's own figures (`pipeline.report`): gradient conflict along training and
test NLL per mixture. Each returns (PNG path, alt text); `reporting.save_figure` writes PNG + SVG
with the legend outside the data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["conflict_figure", "mixtures_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def conflict_figure(conf: pd.DataFrame, path: Path, late_mean: pd.Series) -> tuple[Path, str]:
    """Mean pairwise cosine of per-domain gradients against training progress, one line per
    method with a ± std band over replicates; the alt text gives ``late_mean`` (second half)."""
    from ..reporting import legend_outside, save_figure

    fig, ax = _pyplot().subplots(figsize=(7, 3.5))
    for m, g in conf.groupby("method"):
        c = g.groupby("progress")["value"].agg(["mean", "std"]).reset_index()
        ax.plot(c["progress"], c["mean"], marker="o", ms=3, label=m)
        ax.fill_between(
            c["progress"], c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0), alpha=0.2
        )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("training progress (fraction of steps)")
    ax.set_ylabel("mean pairwise cosine")
    legend_outside(ax)
    alt = (
        "Mean pairwise cosine between per-domain gradients along training; second-half means: "
        + ", ".join(f"{m} {v:+.3f}" for m, v in late_mean.items())
    )
    return save_figure(fig, path, alt=alt), alt


def mixtures_figure(s) -> tuple[Path, str]:
    """Test NLL per mixture for each method of the `pipeline.report.Study` ``s``: proper
    likelihoods solid, each unnormalised gate dashed in its normalised twin's colour."""
    from ..reporting import legend_outside, save_figure

    plt = _pyplot()
    nll, order = s.nll_mix, list(dict.fromkeys(s.mix))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    x = range(len(order))
    means = {}
    for i, m in enumerate(s.methods):
        colour = colours[i % len(colours)]
        means[m] = nll[nll["method"] == m].groupby("lam")["value"].mean().reindex(order)
        ax.plot(x, means[m].values, marker="o", color=colour, label=m)
        raw = m.removesuffix("_logZ")
        if raw != m and raw in set(nll["method"]):
            r = nll[nll["method"] == raw].groupby("lam")["value"].mean().reindex(order)
            ax.plot(
                x,
                r.values,
                ls="--",
                lw=1,
                marker="x",
                ms=4,
                color=colour,
                label=f"{raw} (unnormalised, not a likelihood)",
            )
    ax.set_xticks(x, order, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("test mixture lam (weights of the domains in corpus order)")
    ax.set_ylabel("test NLL (nats/token)")
    ax.set_title(
        f"Test NLL per mixture, mean over {s.n_rep} replicates ({s.match}-matched monolith)",
        fontsize=9,
    )
    legend_outside(ax)
    alt = (
        "Test NLL per token per mixture, mean over replicates: "
        + "; ".join(f"{m}: " + ", ".join(f"{v:.3f}" for v in c.values) for m, c in means.items())
        + f"; mixtures in order {order}"
    )
    return save_figure(fig, s.fig_dir / f"{s.exp}_mixtures", alt=alt), alt
