"""The scaling study's leaderboards: every method of a cell against the SPD gate (the shared
`modgen_bench.leaderboard`), one board per (triple, expert size, budget[, data resample]).

Rows of a board, each graded on the same test windows as a proper likelihood: the SPD gate
(divided by its fresh-draw Z; the reference, named ``gate_excess_logZ`` as in the real-text
pipeline), the constant gate 1/p, the Bayes-posterior router (with a uniform prior the same
model as the constant gate: one row, the tie stated), the best fixed-weight gate (constant
weights chosen on SPD's training windows, `combiners.fixed`) and the monolith trained on the
uniform mixture at every (matching convention, target ratio r) of the cell, named
``mono_uniform_<convention>_r<r>``. Replicates are seeds; the intervals are paired t intervals
over seeds (the seeds share one set of test windows, whose error is not in them: the verdict
table's intervals carry it); with one seed the per-window paired s.e. of the cell's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from modgen_bench.leaderboard import (
    FREE_BASELINES,
    REFERENCE,
    Leaderboard,
    leaderboard,
    leaderboard_section,
)
from modgen_bench.stats import paired_t_interval

__all__ = [
    "BOARD",
    "Boards",
    "board_frame",
    "board_sections",
    "FreeGap",
    "gate_vs_free",
    "mono_name",
]

#: one board per value of these columns
BOARD = ["case", "expert_d", "budget", "resample"]
#: the cell's method names -> the leaderboard's
RENAME = {
    "gate": REFERENCE,
    "const": "const_gate",
    "bayes_router": "bayes_router",
    "gate_fixed_best": "gate_fixed_best",
}
#: the cell's paired rows (a - b) whose negation is a board method - the SPD gate
PAIRED = {"const": "gate-vs-const", "mono": "gate-vs-mono"}
RATIOS = ("params_ratio", "compute_ratio", "token_ratio")


class Boards(NamedTuple):
    """sections: one report Section per board; leaderboards: board key -> Leaderboard."""

    sections: list
    leaderboards: dict


def mono_name(convention, r_target) -> str:
    """The board's name of the uniform-mixture monolith matched by ``convention`` at r."""
    return f"mono_uniform_{convention}_r{float(r_target):g}"


def _uniform_label(nll: pd.DataFrame) -> str:
    labels = [lab for lab in nll["lam"].dropna().unique() if str(lab)]
    return next(lab for lab in labels if np.ptp([float(v) for v in str(lab).split(",")]) < 1e-3)


def _test_rows(g: pd.DataFrame) -> pd.DataFrame:
    """The board's case 'test' rows: NLL per token per (method, lam, seed)."""
    nll = g[g["metric"].eq("nll_per_token") & g["lam"].fillna("").astype(str).ne("")]
    mono = nll[nll["method"].eq("mono")]
    rest = nll[nll["method"].isin(RENAME)]
    rest = rest.assign(method=rest["method"].map(RENAME))
    mono = mono.assign(
        method=[mono_name(c, r) for c, r in zip(mono["convention"], mono["r_target"], strict=True)]
    )
    return pd.concat([rest, mono])[["method", "lam", "seed", "resample", "value"]]


def _paired_rows(g: pd.DataFrame, uniform: str) -> pd.DataFrame:
    """case 'paired' rows method-vs-reference (delta, delta_window_se) from the cell's gate - b
    rows, negated: the leaderboard's per-window intervals when there is one seed."""
    out = []
    for b, method in PAIRED.items():
        d = g[
            g["method"].eq(method)
            & g["metric"].isin(
                ["delta_vertex", "delta_vertex_se", "delta_uniform", "delta_uniform_se"]
            )
        ]
        for _, row in d.iterrows():
            name = mono_name(row["convention"], row["r_target"]) if b == "mono" else RENAME[b]
            se = row["metric"].endswith("_se")
            out.append(
                {
                    "method": f"{name}-vs-{REFERENCE}",
                    "metric": "delta_window_se" if se else "delta",
                    "value": row["value"] if se else -row["value"],
                    "lam": row["lam"] if row["metric"].startswith("delta_vertex") else uniform,
                    "seed": row["seed"],
                    "resample": row["resample"],
                }
            )
    return pd.DataFrame(out, columns=["method", "metric", "value", "lam", "seed", "resample"])


def board_frame(g: pd.DataFrame) -> pd.DataFrame:
    """One board's rows of the scaling cell ``g`` in the leaderboard's vocabulary: case 'test'
    (NLL per token), 'paired' (one-seed windows) and 'cost' (the monoliths' ratios)."""
    test = _test_rows(g).assign(case="test", metric="nll_per_token")
    paired = _paired_rows(g, _uniform_label(test)).assign(case="paired")
    mono = g[g["method"].eq("mono") & g["metric"].eq("nll_per_token")]
    cost = []
    for (conv, r), m in mono.groupby(["convention", "r_target"]):
        for col in RATIOS:
            cost.append(
                {
                    "case": "cost",
                    "method": mono_name(conv, r),
                    "metric": col,
                    "value": float(pd.to_numeric(m[col]).mean()),
                    "lam": "",
                }
            )
    return pd.concat([test, paired, pd.DataFrame(cost)], ignore_index=True)


def _names(g: pd.DataFrame):
    """The corpora in vertex order, from the best fixed-weight gate's weight rows (None before
    those rows existed: the vertices are then labelled by lam)."""
    w = g[g["method"].eq("gate_fixed_best") & g["metric"].astype(str).str.startswith("w_")]
    names = list(dict.fromkeys(w["metric"].str[2:]))
    return names or None


def _title(key: dict, several_resamples: bool) -> str:
    tail = f", data resample {int(key['resample'])}" if several_resamples else ""
    return (
        f"Leaderboard: {key['case']}, experts d = {int(key['expert_d'])}, budget "
        f"{int(key['budget'])} steps{tail}"
    )


def board_sections(df: pd.DataFrame, fig_dir) -> Boards:
    """One leaderboard Section per (triple, expert size, budget[, resample])."""
    df = df.copy()
    df["resample"] = pd.to_numeric(df.get("resample", 0), errors="coerce").fillna(0)
    sub = df[df["budget"].notna()]
    several = sub["resample"].nunique() > 1
    sections, boards = [], {}
    for key, g in sub.groupby(BOARD):
        key = dict(zip(BOARD, key, strict=True))
        convs = sorted(g.loc[g["method"].eq("mono"), "convention"].dropna().unique())
        if not g["method"].eq("gate").any():
            continue
        frame = board_frame(g)
        lb = leaderboard(frame, names=_names(g))
        caption = (
            "[monoliths on the uniform mixture matched by "
            + ", ".join(convs)
            + " at each target ratio r (row names "
            "mono_uniform_<convention>_r<r>); intervals over seeds]"
        )
        tag = f"scaling_{key['case']}_d{int(key['expert_d'])}_B{int(key['budget'])}"
        if several:
            tag += f"_res{int(key['resample'])}"
        sec = leaderboard_section(frame, Path(fig_dir), caption, tag, lb=lb)
        sec.title = _title(key, several)
        sec.level = 3
        sections.append(sec)
        boards[tuple(key.values())] = lb
    return Boards(sections, boards)


class FreeGap(NamedTuple):
    """The SPD gate minus the best free baseline on the worst vertex, paired over seeds."""

    baseline: str
    mean: float
    lo: float  # NaN with one seed
    hi: float


def gate_vs_free(lb: Leaderboard) -> FreeGap | None:
    """The SPD gate minus the board's best free baseline (by worst vertex); None without one."""
    free = [m for m in lb.rivals if m in FREE_BASELINES]
    if not free:
        return None
    d = (lb.worst[lb.reference] - lb.worst[free[0]]).dropna().to_numpy(dtype=float)
    if d.size >= 2:
        iv = paired_t_interval(d)
        return FreeGap(free[0], iv.mean, iv.lo, iv.hi)
    return FreeGap(free[0], float(d.mean()), np.nan, np.nan)
