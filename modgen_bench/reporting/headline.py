"""The answer at a glance: a headline box per report, and the generic pieces
plug-ins build theirs from.

    Headline(title, text, counts, figure, tone)          one box; counts render coloured
    verdict_headline(statuses)                          holds / fails / vacuous counts (fails red)
    paired_differences(rows, a, b)                      a - b per mixture, seed-paired, 95%
    t-interval
    difference_figure(diff, path, ...)                  that difference with its interval per
    mixture
    gate_vs_monolith_headline(rows, gate, mono, fig_dir) the three above as one box

A difference is called better or worse only when its whole interval lies on one side of 0
(a gate, not a point estimate); otherwise it is "undecided", and n = 1 is always undecided.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import Figure, legend_outside, save_figure
from .markdown import code
from .section import Section

__all__ = [
    "Headline",
    "verdict_headline",
    "paired_differences",
    "difference_figure",
    "gate_vs_monolith_headline",
    "auto_headline",
    "VERDICT_ORDER",
]

#: verdict statuses in display order; ``fails`` renders red, ``holds`` green.
VERDICT_ORDER = ("holds", "fails", "vacuous", "inconclusive", "error")


@dataclass
class Headline(Section):
    """One headline box: ``text`` is Markdown; ``counts`` (status -> n) render as coloured badges;
    ``figure`` is shown in the box; ``tone`` is 'ok', 'bad' or 'neutral' (the box's border).

    A `Section` subclass, so a plug-in's ``report()`` still returns a list of sections: the
    report lifts headlines out of it into boxes at the top (and the landing page)."""

    counts: dict = field(default_factory=dict)
    figure: Figure | None = None
    tone: str = "neutral"

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "text": self.text,
            "counts": dict(self.counts),
            "tone": self.tone,
            "figure": str(self.figure.path) if self.figure else None,
        }


def verdict_headline(
    statuses, title: str = "Verdicts", failing: list[str] | None = None
) -> Headline:
    """Counts of each verdict status; tone 'bad' when any claim fails. ``failing`` names them."""
    s = pd.Series(list(statuses), dtype=object)
    counts = {k: int((s == k).sum()) for k in VERDICT_ORDER if (s == k).any()}
    counts.update({k: int(n) for k, n in s.value_counts().items() if k not in counts})
    n_fail = counts.get("fails", 0)
    text = f"{len(s)} verdicts: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + "."
    if failing:  # Markdown items (links allowed), one per line
        text += "\n\nFailing:\n\n" + "\n".join(f"- {f}" for f in failing)
    return Headline(title, text, counts=counts, tone="bad" if n_fail else "ok")


def _x_of(labels: pd.Series) -> pd.Series:
    """The first component of lam labels '0.3,0.7' -> 0.3 when every label has 2 parts, else NaN."""
    parts = labels.astype(str).str.split(",")
    if len(parts) and parts.str.len().eq(2).all():
        return parts.str[0].astype(float)
    return pd.Series(np.nan, index=labels.index)


def paired_differences(
    rows: pd.DataFrame, a: str, b: str, by: str = "lam", level: float = 0.95, pair_on=("seed",)
) -> pd.DataFrame:
    """Per ``by`` value: mean, s.e. and ``level`` t-interval of value(a) - value(b), paired on
    ``pair_on`` (the replicate keys: seed, and e.g. resample where the rows have it).

    Columns: ``by, x, mean, se, n, lo, hi, decision``; decision is 'a better' (hi < 0: lower is
    better), 'b better' (lo > 0) or 'undecided' (the interval holds 0, or n < 2).
    """
    from scipy import stats

    keys = [by, *(k for k in pair_on if k in rows.columns)]
    wide = rows.assign(**{k: rows[k].fillna(-1) for k in keys[1:]}).pivot_table(
        index=keys, columns="method", values="value", aggfunc="mean"
    )
    if a not in wide or b not in wide:
        raise ValueError(
            f"paired_differences: rows hold no method '{a if a not in wide else b}'; "
            f"methods: {', '.join(map(str, wide.columns))}"
        )
    d = (wide[a] - wide[b]).dropna().groupby(level=by)
    out = d.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = out["std"].fillna(0.0) / np.sqrt(out["n"])
    tq = np.where(out["n"] >= 2, stats.t.ppf(0.5 + level / 2, np.maximum(out["n"] - 1, 1)), np.nan)
    out["lo"], out["hi"] = out["mean"] - tq * out["se"], out["mean"] + tq * out["se"]
    out["decision"] = np.where(
        out["hi"] < 0, "a better", np.where(out["lo"] > 0, "b better", "undecided")
    )
    out["x"] = _x_of(out[by])
    return out.drop(columns="std").sort_values(["x", by]).reset_index(drop=True)


_COLOURS = {"a better": "#1a7f37", "b better": "#cf222e", "undecided": "#6e7781"}


def difference_figure(
    diff: pd.DataFrame,
    path,
    a: str,
    b: str,
    ylabel: str,
    xlabel: str = "test mixture: weight of domain A",
    title: str | None = None,
) -> Figure:
    """Points with 95% intervals of a - b per mixture, a zero line, colours by decision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = diff["x"].notna().all()
    x = diff["x"].to_numpy() if numeric else np.arange(len(diff))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.axhline(0.0, color="black", lw=0.8)
    names = {
        "a better": f"{a} better (interval < 0)",
        "b better": f"{b} better (interval > 0)",
        "undecided": "undecided (interval holds 0 or n < 2)",
    }
    for dec, g in diff.groupby("decision"):
        gx = x[g.index.to_numpy()]
        err = np.vstack([g["mean"] - g["lo"], g["hi"] - g["mean"]])
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(
            gx, g["mean"], yerr=err, fmt="o", ms=5, capsize=3, color=_COLOURS[dec], label=names[dec]
        )
    if not numeric:
        ax.set_xticks(x, diff["lam"].astype(str), rotation=30, ha="right", fontsize=8)
    ax.set_xlabel(xlabel if numeric else "test mixture (lam)")
    # the axes are about 2.5 in tall: a longer one-line label runs above them into the title
    ax.set_ylabel(textwrap.fill(ylabel, 28))
    ax.set_title(title or f"{a} minus {b} (mean and 95% t-interval over replicates)", fontsize=10)
    legend_outside(ax)
    n = int(diff["n"].max()) if len(diff) else 0
    alt = (
        f"{a} minus {b} per test mixture with 95% intervals over up to {n} replicates: "
        + "; ".join(
            f"{lam}: {m:+.4g} [{lo:+.4g}, {hi:+.4g}] "
            f"{dec.replace('a better', a + ' better').replace('b better', b + ' better')}"
            for lam, m, lo, hi, dec in zip(
                diff["lam"], diff["mean"], diff["lo"], diff["hi"], diff["decision"], strict=True
            )
        )
    )
    png = save_figure(fig, path, alt=alt)
    return Figure(
        f"{a} minus {b}: {ylabel} per test mixture, 95% t-interval over replicates (below 0: "
        f"{a} better)",
        png,
        alt,
    )


def gate_vs_monolith_headline(
    rows: pd.DataFrame,
    gate: str,
    mono: str,
    fig_dir,
    metric: str,
    unit: str = "nats",
    title: str | None = None,
    xlabel: str = "test mixture: weight of the first domain",
    xname: str = "lam_0",
    pair_on=("seed", "resample"),
) -> Headline:
    """The gate-minus-monolith answer: per mixture, better / worse / undecided by its interval,
    with the difference figure. ``rows``: tidy rows (method, seed, lam, metric, value); ``xname``
    names the first weight in the text when every mixture has two components."""
    import re

    sub = rows[rows["metric"].eq(metric) & rows["lam"].astype(str).ne("")]
    diff = paired_differences(sub, gate, mono, pair_on=pair_on)
    title = title or f"{gate} vs {mono}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"headline_{title}_{gate}_minus_{mono}_{metric}")
    fig = difference_figure(
        diff, Path(fig_dir) / stem, gate, mono, f"{metric} difference ({unit})", xlabel=xlabel
    )
    numeric = diff["x"].notna().all()

    def lab(d):
        pick = diff[diff["decision"].eq(d)]
        if not len(pick):
            return "no mixture"
        if numeric:
            return f"{xname} = " + ", ".join(f"{v:g}" for v in pick["x"])
        return "; ".join(f"lam = {code(v)}" for v in pick["lam"])

    n = int(diff["n"].min()) if len(diff) else 0
    reps = " x ".join(k for k in pair_on if k in sub.columns and sub[k].notna().any()) or "seed"
    text = (
        f"**{code(gate)} minus {code(mono)}**, {code(metric)} ({unit}), paired on {reps}, "
        f"95% t-interval over {n} replicates"
        f"{' (one seed decides nothing)' if n < 2 else ''}: gate better at {lab('a better')}; "
        f"monolith better at {lab('b better')}; undecided at {lab('undecided')}."
    )
    tone = (
        "ok"
        if diff["decision"].eq("a better").all()
        else ("bad" if diff["decision"].eq("b better").any() else "neutral")
    )
    return Headline(title, text, figure=fig, tone=tone)


#: metrics an automatic headline compares, in order of preference (lower is better for each)
AUTO_METRICS = ("kl_per_token", "nll_per_token", "bits_per_byte")


def auto_headline(rows: pd.DataFrame, fig_dir) -> Headline | None:
    """For a run whose plug-in states no headline: the gate-minus-monolith box from its tidy rows
    alone, when they hold a ``gate*`` and a ``mono*`` method on the same test mixtures (the first
    of `AUTO_METRICS` they share; the ``*uniform*`` monolith when there are several); else None.
    The box says it was chosen automatically, naming what it compares."""
    mixed = rows[rows["lam"].astype(str).ne("")]
    for metric in AUTO_METRICS:
        m = mixed[mixed["metric"].eq(metric)]
        methods = sorted(set(m["method"]))
        gates = [x for x in methods if x.startswith("gate") and not x.endswith("_logZ")]
        monos = sorted(
            (x for x in methods if x.startswith("mono")), key=lambda x: ("uniform" not in x, x)
        )
        if gates and monos:
            h = gate_vs_monolith_headline(
                m,
                gates[0],
                monos[0],
                fig_dir,
                metric,
                unit="nats" if "bits" not in metric else "bits",
                title=f"{gates[0]} vs {monos[0]}",
            )
            h.text += (
                f" *(Chosen automatically from the rows: the plug-in states no headline; "
                f"other gates: {', '.join(map(code, gates[1:])) or 'none'}; other "
                f"monoliths: {', '.join(map(code, monos[1:])) or 'none'}.)*"
            )
            return h
    return None
