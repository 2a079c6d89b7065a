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
"""

from __future__ import annotations

from dataclasses import dataclass
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
]

REFERENCE = "gate_excess_logZ"
#: free baselines: no network trained (constant weights at most)
FREE_BASELINES = ("const_gate", "gate_fixed_best")
#: not proper likelihoods (unnormalised gates) or not rivals (single experts, own-mixture oracles)
EXCLUDED = ("gate_excess", "gate_nll")
WORST, UNIFORM = "worst vertex", "uniform"


@dataclass
class Leaderboard:
    """cells: one row per (method, mixture): mean NLL, delta (method - reference), lo, hi, n,
    p_better, p_worse (one-sided t over replicates); order: methods by mean worst-vertex NLL;
    worst: (rep x method) worst-vertex NLL; every: method -> "better"/"worse"/"undecided" on
    every mixture (Holm); mixtures: the column labels in order; reference: the paired method."""

    cells: pd.DataFrame
    order: list
    worst: pd.DataFrame
    every: dict
    mixtures: list
    reference: str


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


def leaderboard(df: pd.DataFrame, reference: str = REFERENCE, names=None) -> Leaderboard:
    """The leaderboard of the test NLL rows of ``df`` (case 'test', metric 'nll_per_token');
    ``names``: the domains' names for the vertex columns (default their lam labels)."""
    nll = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")].copy()
    nll["rep"] = _rep(nll)
    nll = nll[~nll["method"].isin(EXCLUDED) & ~nll["method"].str.startswith(("expert_", "oracle_"))]
    if reference not in set(nll["method"]):
        raise ValueError(f"leaderboard: no test rows of the reference method {reference!r}")
    nll["value"] = pd.to_numeric(nll["value"])
    tab = nll.pivot_table(index=["lam", "rep"], columns="method", values="value", aggfunc="mean")
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
    return Leaderboard(cells, order, worst, every, mixtures, reference)


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
    ``costs`` (method x params_ratio, compute_ratio, token_ratio) the ratio columns."""
    out = []
    for rank, m in enumerate(lb.order, 1):
        c = lb.cells[lb.cells["method"] == m].set_index("mixture")
        row = {"rank": rank, "method": m, "match": match}
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
    best, ref = lb.order[0], lb.reference
    text = (f"Best on the worst mixture (worst vertex): **{best}**, "
            f"{c.loc[best, 'mean']:.4f} nats/token")
    if best == ref and len(lb.order) > 1:
        r = lb.order[1]
        d, lo, hi = c.loc[r, "delta"], c.loc[r, "lo"], c.loc[r, "hi"]
        text += f"; runner-up {r}: {_band(d, lo, hi)} against it{_excl(lo, hi)}"
    elif best != ref:
        d, lo, hi = c.loc[best, "delta"], c.loc[best, "lo"], c.loc[best, "hi"]
        text += f"; against the SPD gate {ref}: {_band(d, lo, hi)}{_excl(lo, hi)}"
    text += "."
    free = [m for m in lb.order if m in FREE_BASELINES]
    if best not in FREE_BASELINES and free:
        f = free[0]
        d, lo, hi = _pair_text(lb, f, best)
        text += (f" Best free baseline: {f}, {c.loc[f, 'mean']:.4f} "
                 f"({f} - {best} = {_band(d, lo, hi)}): ")
        if not np.isfinite(lo):
            text += f"with one replicate {best} is not shown to beat it."
        elif d <= 0:
            text += f"the free baseline does at least as well as {best} on the worst mixture."
        elif lo <= 0:
            text += (f"{best} is not shown to beat the free baseline on the worst mixture "
                     "(the interval includes 0).")
        else:
            text += f"{best} beats it, the interval excludes 0."
    return text


def leaderboard_figure(lb: Leaderboard, path, convention: str) -> tuple[Path, str]:
    """Forest plot of method - reference on the worst vertex and the uniform mixture with 95%
    intervals, methods in leaderboard order; returns (PNG path, alt text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import legend_outside, save_figure

    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(lb.order) + 1.5))
    y = np.arange(len(lb.order))[::-1]
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
    ax.set_yticks(y, lb.order, fontsize=8)
    ax.set_xlabel(f"test NLL - {lb.reference} (nats/token; < 0: better than the SPD gate)")
    ax.set_title(f"Leaderboard, 95% paired intervals {convention}", fontsize=9)
    legend_outside(ax)
    alt = "Method minus SPD gate, test NLL per token: " + "; ".join(parts)
    return save_figure(fig, Path(path), alt=alt), alt


def leaderboard_section(
    df: pd.DataFrame, fig_dir, convention: str, exp: str = "study", names=None, match: str = "",
    lb: Leaderboard | None = None,
):
    """The report `Section`: headline, table, figure, cost and skip notes (``convention``: the
    matching convention's caption text, named in the table's and figure's captions; ``lb``:
    the `leaderboard` of ``df`` when the caller has it already)."""
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
    text = leaderboard_headline(lb) + (
        " Cells: mean test NLL per token over replicates (method - SPD gate, 95% paired interval); "
        "the worst vertex is each replicate's worst vertex, averaged (so it can exceed every "
        "vertex's mean); rows sorted by the worst vertex; ratios: parameters / (experts + SPD gate), training FLOPs"
        " "
        "and tokens / the experts' combined (everything the method trains, the experts included "
        "when it uses them)."
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
                f"Leaderboard: test NLL per token, method - {lb.reference} {convention}",
                leaderboard_table(lb, costs, match),
            )
        ],
        figures=[(f"Method - SPD gate with 95% paired intervals {convention}", png, alt)],
    )
