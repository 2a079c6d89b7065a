"""The leaderboard of a study: every method against the SPD gate on the mixtures that matter.

Rows: methods; columns: every vertex (one domain alone), the uniform mixture and the worst vertex
(the worst mixture for cross-entropy, which is linear in lam: PAPER.md section 2). Each cell is
the method's mean test NLL per token over replicates with the paired difference method - SPD gate
and its 95% Student-t interval over replicates (`stats.paired_t_interval`; with one replicate,
the per-window paired s.e. of case ``paired`` rows, normal interval; the worst vertex then has
none). On the worst vertex the pairing is per replicate: max_k NLL_k(method) - max_k NLL_k(gate).
Rows are sorted by mean worst-vertex NLL. "Every mixture": the method is better (or worse) than
the SPD gate on every vertex and the uniform mixture, each a one-sided t-test over replicates,
Holm's step-down correction over the p + 1 tests at 5%.

The headline names the method best on the worst mixture and whether its interval against the
SPD gate excludes 0; when it credits a trained method it names the best free baseline (the
constant 1/p gate or the best fixed-weight gate) beside it and says so when that baseline does as
well (their paired worst-vertex interval holds 0, or the baseline is lower).

Methods equal within ``TIE_TOL`` on every (mixture, replicate) cell are one row, the others named
beside it (a stated tie, never an arbitrary order): with a uniform prior the Bayes router's
student IS the constant gate (its product of posteriors telescopes to (1/p) sum_k E_k(x)).
Exact references (``bounds``: e.g. the exact minimax gate of a finite problem, which knows the
test distributions) are shown in order but never named best.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from .stats import LEVEL, holm, paired_t_interval

__all__ = [
    "Leaderboard",
    "leaderboard",
    "holm",
    "leaderboard_table",
    "leaderboard_headline",
    "leaderboard_figure",
    "leaderboard_section",
    "FREE_BASELINES",
    "EXCLUDED",
    "REFERENCE",
    "TIE_TOL",
    "free_baseline_text",
    "tie_text",
]

REFERENCE = "gate_excess_logZ"
#: free baselines: no network trained (constant weights at most)
FREE_BASELINES = ("const_gate", "gate_fixed_best")
#: not proper likelihoods (unnormalised gates) or not rivals (single experts, own-mixture oracles)
EXCLUDED = ("gate_excess", "gate_nll")
WORST, UNIFORM = "worst vertex", "uniform"
#: nats/token: methods this close on every cell are one row (float32 caches round at ~1e-7)
TIE_TOL = 1e-6
#: ties the theory predicts, and the reason stated beside them
IDENTITIES = {
    frozenset({"const_gate", "bayes_router"}): (
        "with a uniform prior the Bayes router's student is exactly the constant gate: its "
        "product of posteriors telescopes to (1/p) sum_k E_k(x)"
    ),
}


@dataclass
class Leaderboard:
    """cells: one row per (method, mixture): mean NLL, delta (method - reference), lo, hi, n,
    p_better, p_worse (one-sided t over replicates); order: methods by mean worst-vertex NLL;
    worst: (rep x method) worst-vertex NLL; every: method -> "better"/"worse"/"undecided" on
    every mixture (Holm); mixtures: the column labels in order; reference: the paired method;
    ties: kept method -> the methods equal to it on every cell (not rows of their own);
    quantity: what the cells measure; bounds: exact references -> what they are."""

    cells: pd.DataFrame
    order: list
    worst: pd.DataFrame
    every: dict
    mixtures: list
    reference: str
    ties: dict = field(default_factory=dict)
    quantity: str = "test NLL per token"
    bounds: dict = field(default_factory=dict)

    @property
    def rivals(self) -> list:
        """The order without the exact references."""
        return [m for m in self.order if m not in self.bounds]


def _lam(label: str) -> np.ndarray:
    return np.asarray([float(v) for v in str(label).split(",")])


def _rep(df: pd.DataFrame) -> pd.Series:
    if "rep" in df.columns:
        return df["rep"].astype(str)
    seed = pd.to_numeric(df["seed"], errors="coerce").fillna(0).astype(int).astype(str)
    res = pd.to_numeric(df.get("resample", 0), errors="coerce")
    res = res.fillna(0).astype(int).astype(str) if isinstance(res, pd.Series) else "0"
    return seed + "/" + res


def _one_sided(d: np.ndarray) -> tuple[float, float]:
    """(P(better), P(worse)) one-sided t-test p-values of mean d < 0 and mean d > 0 (n >= 2)."""
    if d.size < 2 or not np.isfinite(d).all():
        return np.nan, np.nan
    se = d.std(ddof=1) / np.sqrt(d.size)
    if se == 0:
        return (0.0, 1.0) if d.mean() < 0 else (1.0, 0.0) if d.mean() > 0 else (1.0, 1.0)
    t = d.mean() / se
    return float(_st.t.cdf(t, d.size - 1)), float(_st.t.sf(t, d.size - 1))


def _window_interval(df, method, ref, lam) -> tuple[float, float]:
    """One replicate: delta +- z se from case 'paired' rows (per-window paired s.e.)."""
    pr = df[(df["case"] == "paired") & (df["method"] == f"{method}-vs-{ref}") & (df["lam"] == lam)]
    se = pr[pr["metric"] == "delta_window_se"]["value"]
    if not len(se):
        return np.nan, np.nan
    z = _st.norm.ppf(0.5 + LEVEL / 2)
    d = float(pr[pr["metric"] == "delta"]["value"].mean())
    return d - z * float(se.mean()), d + z * float(se.mean())


def _cell(method, mixture, a: pd.Series, b: pd.Series, window=(np.nan, np.nan)) -> dict:
    """One cell from per-replicate values a (method) and b (reference), aligned on replicates."""
    d = (a - b).dropna().to_numpy(dtype=float)
    lo, hi = window
    if d.size >= 2:
        iv = paired_t_interval(d)
        lo, hi = iv.lo, iv.hi
    pb, pw = _one_sided(d)
    return {
        "method": method,
        "mixture": mixture,
        "mean": float(a.mean()),
        "delta": float(d.mean()) if d.size else np.nan,
        "lo": lo,
        "hi": hi,
        "n": int(d.size),
        "p_better": pb,
        "p_worse": pw,
    }


def leaderboard(
    df: pd.DataFrame,
    reference: str = REFERENCE,
    names=None,
    metric: str = "nll_per_token",
    quantity: str = "test NLL per token",
    bounds: dict | None = None,
) -> Leaderboard:
    """The leaderboard of the test rows of ``df`` (case 'test', ``metric``, linear or convex in
    lam so its worst mixture is a vertex); ``names``: the domains' names for the vertex columns
    (default their lam labels); ``bounds``: exact references -> what they are."""
    nll = df[(df["case"] == "test") & (df["metric"] == metric)].copy()
    nll["rep"] = _rep(nll)
    nll = nll[~nll["method"].isin(EXCLUDED) & ~nll["method"].str.startswith(("expert_", "oracle_"))]
    if reference not in set(nll["method"]):
        raise ValueError(f"leaderboard: no test rows of the reference method {reference!r}")
    nll["value"] = pd.to_numeric(nll["value"])
    tab = nll.pivot_table(index=["lam", "rep"], columns="method", values="value", aggfunc="mean")
    tab, ties = _merge_ties(tab, reference)
    labels = list(dict.fromkeys(nll["lam"]))
    vertices = sorted(
        (lab for lab in labels if _lam(lab).max() == 1.0), key=lambda s: int(np.argmax(_lam(s)))
    )
    uniform = next((lab for lab in labels if np.ptp(_lam(lab)) < 1e-3), None)
    vname = {v: (names[int(np.argmax(_lam(v)))] if names else v) for v in vertices}
    worst = pd.concat([tab.loc[v] for v in vertices]).groupby(level="rep").max()  # (rep, method)
    methods = list(tab.columns)
    rows = []
    for m in methods:
        rows.append(_cell(m, WORST, worst[m], worst[reference]))
        for lab in ([uniform] if uniform else []) + vertices:
            t = tab.loc[lab]
            rows.append(
                _cell(
                    m,
                    UNIFORM if lab == uniform else vname[lab],
                    t[m],
                    t[reference],
                    _window_interval(df, m, reference, lab),
                )
            )
    cells = pd.DataFrame(rows)
    order = list(cells[cells["mixture"] == WORST].sort_values(["mean", "method"])["method"])
    every = {
        m: _every(cells[(cells["method"] == m) & (cells["mixture"] != WORST)]) for m in methods
    }
    mixtures = [WORST] + ([UNIFORM] if uniform else []) + [vname[v] for v in vertices]
    return Leaderboard(
        cells, order, worst, every, mixtures, reference, ties, quantity, dict(bounds or {})
    )


def _merge_ties(tab: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, dict]:
    """Columns of ``tab`` equal within TIE_TOL on every cell (NaN where the other is NaN) become
    one: the reference is kept first, then a free baseline, then the first name."""
    prefer = sorted(tab.columns, key=lambda m: (m != reference, m not in FREE_BASELINES, m))
    kept, ties = [], {}
    for m in prefer:
        x = tab[m].to_numpy(dtype=float)
        for k in kept:
            y = tab[k].to_numpy(dtype=float)
            same_nan = np.array_equal(np.isnan(x), np.isnan(y))
            if same_nan and np.nanmax(np.abs(x - y), initial=0.0) <= TIE_TOL:
                ties.setdefault(k, []).append(m)
                break
        else:
            kept.append(m)
    return tab[[m for m in tab.columns if m in kept]], ties


def _every(c: pd.DataFrame, alpha: float = 1 - LEVEL) -> str:
    """'better'/'worse' when Holm rejects every one of the one-sided nulls, else 'undecided'."""
    for side, word in (("p_better", "better"), ("p_worse", "worse")):
        p = c[side].to_numpy(dtype=float)
        if p.size and np.isfinite(p).all() and (holm(p) <= alpha).all():
            return word
    return "undecided"


def _fmt(c) -> str:
    if not np.isfinite(c["delta"]):
        return f"{c['mean']:.4f}"
    band = f" [{c['lo']:+.4f}, {c['hi']:+.4f}]" if np.isfinite(c["lo"]) else " [no interval]"
    return f"{c['mean']:.4f} ({c['delta']:+.4f}{band})"


def leaderboard_table(
    lb: Leaderboard, costs: pd.DataFrame | None = None, match: str = ""
) -> pd.DataFrame:
    """The formatted table: one row per method in order, cells 'mean (delta [lo, hi])'; with
    ``costs`` (method x params_ratio, compute_ratio, token_ratio) the ratio columns; with ties a
    column naming the methods each row stands for; exact references ranked '-'; a ``match``
    column only when one convention holds for every row."""
    out, rank = [], 0
    for m in lb.order:
        c = lb.cells[lb.cells["method"] == m].set_index("mixture")
        rank += m not in lb.bounds
        row = {"rank": "-" if m in lb.bounds else rank, "method": m}
        if match:
            row["match"] = match
        if lb.ties:
            row["identical to"] = ", ".join(lb.ties.get(m, [])) or "-"
        if costs is not None:
            for col in ("params_ratio", "compute_ratio", "token_ratio"):
                v = costs[col].get(m, np.nan) if col in costs else np.nan
                row[col] = f"{v:.2f}" if np.isfinite(v) else "-"
        for mix in lb.mixtures:
            ref = m == lb.reference
            row[mix] = f"{c.loc[mix, 'mean']:.4f} (reference)" if ref else _fmt(c.loc[mix])
        row[f"every mixture vs {lb.reference} (Holm)"] = "-" if m == lb.reference else lb.every[m]
        out.append(row)
    return pd.DataFrame(out)


def _pair_text(lb: Leaderboard, a: str, b: str) -> tuple[float, float, float]:
    """(mean, lo, hi) of worst-vertex a - b paired over replicates (NaN bounds for one)."""
    d = (lb.worst[a] - lb.worst[b]).dropna().to_numpy(dtype=float)
    if d.size >= 2:
        iv = paired_t_interval(d)
        return iv.mean, iv.lo, iv.hi
    return float(d.mean()), np.nan, np.nan


def _band(d, lo, hi) -> str:
    """'+d [+lo, +hi]', or '+d (no interval)' with one replicate."""
    return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" if np.isfinite(lo) else f"{d:+.4f} (no interval)"


def _excl(lo, hi) -> str:
    """' (its interval excludes 0)' / ' (... includes 0)'; nothing without an interval."""
    if not np.isfinite(lo):
        return ""
    return " (its interval excludes 0)" if (hi < 0 or lo > 0) else " (its interval includes 0)"


def leaderboard_headline(lb: Leaderboard) -> str:
    """The headline sentence (module docstring)."""
    c = lb.cells[lb.cells["mixture"] == WORST].set_index("method")
    rivals, ref = lb.rivals, lb.reference
    best = rivals[0]
    text = (
        f"Best on the worst mixture (worst vertex): **{best}**{_tied(lb, best)}, "
        f"{c.loc[best, 'mean']:.4f} nats/token"
    )
    if best == ref and len(rivals) > 1:
        r = rivals[1]
        d, lo, hi = c.loc[r, "delta"], c.loc[r, "lo"], c.loc[r, "hi"]
        text += f"; runner-up {r}{_tied(lb, r)}: {_band(d, lo, hi)} against it{_excl(lo, hi)}"
    elif best != ref:
        d, lo, hi = c.loc[best, "delta"], c.loc[best, "lo"], c.loc[best, "hi"]
        text += f"; against the SPD gate {ref}: {_band(d, lo, hi)}{_excl(lo, hi)}"
    text += "."
    if best not in FREE_BASELINES:
        text += free_baseline_text(lb, best)
    for b, what in lb.bounds.items():
        text += (
            f" Exact reference {b} ({what}): {c.loc[b, 'mean']:.4f}, "
            f"{b} - {ref} = {_band(c.loc[b, 'delta'], c.loc[b, 'lo'], c.loc[b, 'hi'])}."
        )
    return text


def _tied(lb: Leaderboard, m: str) -> str:
    """' (= bayes_router)' for a row standing for tied methods."""
    return f" (= {', '.join(lb.ties[m])})" if m in lb.ties else ""


def free_baseline_text(lb: Leaderboard, method: str) -> str:
    """' Best free baseline: f, mean (f - method = d [lo, hi]): <verdict>' on the worst vertex,
    paired over replicates; empty without a free baseline on the board. The verdict says when
    the baseline beats ``method`` (hi < 0), does as well (d <= 0) or ``method`` is not shown to
    beat it (lo <= 0)."""
    free = [m for m in lb.rivals if m in FREE_BASELINES and m != method]
    if not free:
        return ""
    f = free[0]
    c = lb.cells[(lb.cells["method"] == f) & (lb.cells["mixture"] == WORST)]
    d, lo, hi = _pair_text(lb, f, method)
    text = (
        f" Best free baseline: {f}{_tied(lb, f)}, {float(c['mean'].iloc[0]):.4f} "
        f"({f} - {method} = {_band(d, lo, hi)}): "
    )
    if not np.isfinite(lo):
        return text + f"with one replicate {method} is not shown to beat it."
    if hi < 0:
        return text + (
            f"the free baseline beats {method} on the worst mixture (the interval excludes 0)."
        )
    if d <= 0:
        return text + f"the free baseline does at least as well as {method} on the worst mixture."
    if lo <= 0:
        return text + (
            f"{method} is not shown to beat the free baseline on the worst mixture "
            "(the interval includes 0)."
        )
    return text + f"{method} beats it, the interval excludes 0."


def tie_text(lb: Leaderboard) -> str:
    """One sentence per tie: which methods are one row, and why where the theory says so."""
    out = ""
    for k, others in lb.ties.items():
        why = [IDENTITIES[frozenset({k, o})] for o in others if frozenset({k, o}) in IDENTITIES]
        out += (
            f" Tie: {', '.join(others)} equal{'s' if len(others) == 1 else ''} {k} within "
            f"{TIE_TOL:g} nats/token on every mixture and replicate, one row"
            + (f" ({'; '.join(why)})" if why else "")
            + "."
        )
    return out


def leaderboard_figure(lb: Leaderboard, path, convention: str) -> tuple[Path, str]:
    """Forest plot of method - reference on the worst vertex and the uniform mixture with 95%
    intervals, methods in leaderboard order; returns (PNG path, alt text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import legend_outside, save_figure

    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(lb.order) + 1.5))
    y = np.arange(len(lb.order))[::-1]
    labels = [m + _tied(lb, m) for m in lb.order]
    parts = []
    for off, mix, mk in ((0.15, WORST, "o"), (-0.15, UNIFORM, "s")):
        c = lb.cells[lb.cells["mixture"] == mix].set_index("method").reindex(lb.order)
        if c["delta"].isna().all():
            continue
        err = np.vstack([c["delta"] - c["lo"], c["hi"] - c["delta"]])
        ax.errorbar(
            c["delta"], y + off, xerr=np.nan_to_num(err), fmt=mk, ms=4, capsize=2, label=mix
        )
        parts.append(f"{mix}: " + ", ".join(f"{m} {v:+.3f}" for m, v in c["delta"].items()))
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(f"{lb.quantity} - {lb.reference} (nats/token; < 0: better than the SPD gate)")
    ax.set_title(f"Leaderboard, 95% paired intervals {convention}", fontsize=9)
    legend_outside(ax)
    alt = f"Method minus SPD gate, {lb.quantity}: " + "; ".join(parts)
    return save_figure(fig, Path(path), alt=alt), alt


def leaderboard_section(
    df: pd.DataFrame,
    fig_dir,
    convention: str,
    exp: str = "study",
    names=None,
    match: str = "",
    lb: Leaderboard | None = None,
):
    """The report `Section`: headline, table, figure, cost and skip notes (``convention``: the
    matching convention's caption text, named in the table's and figure's captions; ``lb``: a
    leaderboard already built from ``df`` with non-default settings)."""
    from .reporting import Section

    lb = lb if lb is not None else leaderboard(df, names=names)
    cost = df[df["case"] == "cost"]
    costs = (
        cost.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
        if len(cost)
        else None
    )
    png, alt = leaderboard_figure(lb, Path(fig_dir) / f"{exp}_leaderboard", convention)
    skips = df[df["case"] == "skip"]
    text = (
        leaderboard_headline(lb)
        + tie_text(lb)
        + (
            f" Cells: mean {lb.quantity} over replicates (method - SPD gate, 95% paired interval); "
            "the worst vertex is each replicate's worst vertex, averaged (so it can exceed every "
            "vertex's mean); rows sorted by the worst vertex"
        )
    )
    text += (
        "; ratios: parameters / (experts + SPD gate), training FLOPs and tokens / the experts' "
        "combined (everything the method trains, the experts included when it uses them)."
        if costs is not None
        else "."
    )
    if len(skips):
        reasons = skips.drop_duplicates("method")
        text += (
            " Not run: "
            + "; ".join(
                f"{m} ({r})"
                for m, r in zip(
                    reasons["method"], reasons.get("reason", [""] * len(reasons)), strict=True
                )
            )
            + "."
        )
    return Section(
        "Leaderboard",
        text,
        tables=[
            (
                f"Leaderboard: {lb.quantity}, method - {lb.reference} {convention}",
                leaderboard_table(lb, costs, match),
            )
        ],
        figures=[(f"Method - SPD gate with 95% paired intervals {convention}", png, alt)],
    )
