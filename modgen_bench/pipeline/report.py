"""The real-text study's report from its tidy rows alone (PAPER.md section 5, Tables 1-2).

``report(df, fig_dir) -> [Section]`` is what a suite plug-in exposes. One statistics convention
everywhere (`modgen_bench.stats`): a comparison is a paired difference a - b
(NLL per token, negative = a better) with its 95% t-interval over replicates
(`stats.paired_table`) and the per-window paired s.e. (case ``paired`` rows, averaged over
replicates); a "win" only where the interval excludes 0. Gates enter only as proper
likelihoods (``gate_*_logZ``: divided by Z_hat from fresh draws, Z's interval carried into the
NLL). Every table caption names the monolith's matching convention (`modgen_bench.matching`).
The headline boxes at the top are `reporting.gate_vs_monolith_headline` for gate_excess_logZ
against mono_uniform and the leaderboard's answer. Figures: PNG + SVG with alt text
(`reporting.save_figure`, `report_figures`), legends outside the data.

The report is `SECTIONS`, a list of builders ``section(study) -> Section | None`` over the rows
parsed once (`study`); their prose is in ``reporting/templates/real_text.md.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting import Headline, Section, gate_vs_monolith_headline
from ..reporting.prose import prose
from .report_figures import conflict_figure, mixtures_figure

__all__ = ["report", "Study", "SECTIONS", "GATES", "RETRAINS", "BASELINES"]

GATES = ["gate_excess_logZ", "gate_nll_logZ", "router"]
BASELINES = ["const_gate", "bayes_router"]
RETRAINS = ["mono_uniform", "mono_lamstar"]
HEAD_GATE, HEAD_MONO = "gate_excess_logZ", "mono_uniform"
#: the report's prose, one macro per section (modgen_bench/reporting/templates)
PROSE = "real_text.md.j2"


def _lam(label: str) -> np.ndarray:
    return np.asarray([float(v) for v in label.split(",")])


def _mse(values) -> str:
    """'mean ± s.e. (n)' over replicates (s.e. = std(ddof=1) / sqrt(n); n = 1: the value alone)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.4f} (n=1)"
    return f"{v.mean():.4f} ± {v.std(ddof=1) / np.sqrt(len(v)):.4f} (n={len(v)})"


def _reps(df: pd.DataFrame) -> pd.DataFrame:
    """A replicate key 'rep' = 'seed/resample' (every (seed, resample) pair is one replicate)."""
    seed, resample = df["seed"].astype(int).astype(str), df["resample"].astype(int).astype(str)
    return df.assign(rep=seed + "/" + resample)


def _mono_params(df: pd.DataFrame) -> pd.Series:
    """The monolith's matching ratios (metric -> mean over replicates)."""
    return df[(df["case"] == "params") & (df["method"] == "mono")].groupby("metric")["value"].mean()


def _convention(df: pd.DataFrame) -> tuple[str, str]:
    """(match, caption suffix naming the convention, r, compute and token ratios)."""
    has_match = "match" in df.columns and df["match"].notna().any()
    match = str(df["match"].dropna().iloc[0]) if has_match else "params"
    par = _mono_params(df)
    parts = [f"monolith matched by {match}"]
    for key, name in (
        ("r_nonembedding", "r"),
        ("compute_ratio", "compute ratio"),
        ("token_ratio", "token ratio"),
    ):
        if key in par:
            parts.append(f"{name} {par[key]:.2f}")
    return match, "[" + ", ".join(parts) + "]"


def _table1(nll: pd.DataFrame, methods) -> pd.DataFrame:
    """NLL/token: uniform mixture, worst vertex and mean over mixtures; mean ± s.e. over
    replicates."""
    uniform = next(lam for lam in nll["lam"].unique() if np.ptp(_lam(lam)) < 1e-3)
    vertex = nll["lam"].map(lambda lam: _lam(lam).max() == 1.0)
    rows = []
    for m in methods:
        gm = nll[nll["method"] == m]
        rows.append(
            {
                "method": m,
                "uniform mixture": _mse(gm[gm["lam"] == uniform]["value"]),
                "worst vertex": _mse(gm[vertex.loc[gm.index]].groupby("rep")["value"].max()),
                "mean of mixtures": _mse(gm.groupby("rep")["value"].mean()),
            }
        )
    return pd.DataFrame(rows)


def _paired(nll: pd.DataFrame, df: pd.DataFrame, a: str, others) -> pd.DataFrame:
    """``stats.paired_table`` of a - other per mixture over replicates, with the mean per-window
    paired s.e. of the same difference (case 'paired') beside it."""
    from ..stats import paired_table

    t = paired_table(
        nll, a, [o for o in others if o in set(nll["method"])], index="lam", unit="rep"
    )
    if not len(t):
        return t
    win = df[(df["case"] == "paired") & (df["metric"] == "delta_window_se")]
    se = win.groupby(["method", "lam"])["value"].mean()
    t["window s.e."] = [
        se.get((f"{x}-vs-{y}", lam), np.nan)
        for x, y, lam in zip(t["a"], t["b"], t["lam"], strict=True)
    ]
    return t[["lam", "a", "b", "cell", "n", "window s.e.", "verdict"]].rename(
        columns={"cell": "a - b: mean [95% t-interval]"}
    )


def _wins(t: pd.DataFrame, a: str, b: str) -> str:
    sub = t[(t["a"] == a) & (t["b"] == b)]
    return (
        f"{a} better on {int((sub['verdict'] == f'{a} wins').sum())}, {b} better on "
        f"{int((sub['verdict'] == f'{b} wins').sum())}, undecided on "
        f"{int((sub['verdict'] == 'undecided').sum())} of {len(sub)} mixtures"
    )


def _z(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(Z on fresh draws per gate and replicate: Z, Z_lo, Z_hi columns; whether each interval
    holds 1)."""
    z = (
        df[df["case"] == "Z"]
        .pivot_table(index=["method", "rep"], columns="metric", values="value")
        .reset_index()
    )
    cover = ((z["Z_lo"] <= 1) & (z["Z_hi"] >= 1)) if len(z) else pd.Series(dtype=bool)
    return z, cover


@dataclass
class Study:
    """What every section reads: the study's rows, prepared once."""

    df: pd.DataFrame  # every row, numbers parsed, with the replicate key 'rep'
    fig_dir: Path
    exp: str  # the experiment's name (prefix of its figure files)
    match: str  # the monolith's matching convention
    conv: str  # caption suffix naming the convention and its ratios
    nll: pd.DataFrame  # test NLL per token, every mixture
    mix: list  # test mixtures, those with only oracle rows left out
    nll_mix: pd.DataFrame  # test NLL per token on `mix`
    methods: list  # the `GATES`, `BASELINES` and `RETRAINS` present, in that order
    n_rep: int  # replicates: (seed, resample) pairs
    names: list  # domain names in corpus order (from the lam* rows; [] if none)

    @cached_property
    def board(self):
        """Every method against the SPD gate (`modgen_bench.leaderboard.leaderboard`)."""
        from ..leaderboard import leaderboard

        return leaderboard(self.df, names=self.names or None)


def study(df: pd.DataFrame, fig_dir) -> Study:
    """The rows of one run, parsed (CSV blanks -> NaN; resample blank -> 0) into a `Study`."""
    df = df.copy()
    for col in ("value", "seed", "resample", "step", "progress"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df["resample"] = df["resample"].fillna(0).astype(int)
    df = _reps(df)
    match, conv = _convention(df)
    nll = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    mix = [
        lam
        for lam in nll["lam"].unique()
        if not nll[nll["lam"] == lam]["method"].str.startswith("oracle").all()
    ]
    names = [m[len("lam_") :] for m in df[df["case"] == "lam_star"]["metric"].drop_duplicates()]
    return Study(
        df=df,
        fig_dir=Path(fig_dir),
        match=match,
        conv=conv,
        nll=nll,
        mix=mix,
        exp=str(df["experiment"].iloc[0]) if "experiment" in df.columns else "real_world",
        nll_mix=nll[nll["lam"].isin(mix)],
        n_rep=nll["rep"].nunique(),
        names=names,
        methods=[m for m in GATES + BASELINES + RETRAINS if m in set(nll["method"])],
    )


def headline(s: Study) -> Headline | None:
    """Gate minus monolith per mixture with intervals, the matching ratios, Z's coverage and the
    constant gate against the same monolith."""
    if not {HEAD_GATE, HEAD_MONO} <= set(s.nll_mix["method"]):
        return None
    head = gate_vs_monolith_headline(
        s.nll_mix,
        HEAD_GATE,
        HEAD_MONO,
        s.fig_dir,
        "nll_per_token",
        unit="nats/token",
        title=f"gate vs monolith ({s.match}-matched)",
        xlabel="test mixture (lam)",
        pair_on=("seed", "resample"),
    )
    const_vs_mono = None
    if "const_gate" in set(s.nll_mix["method"]):
        t = _paired(s.nll_mix, s.df, "const_gate", ["mono_uniform"])
        const_vs_mono = _wins(t, "const_gate", "mono_uniform") if len(t) else None
    par, (_, cover) = _mono_params(s.df), _z(s.df)
    head.text += " " + prose(
        PROSE,
        "headline",
        match=s.match,
        r=par.get("r_nonembedding", np.nan),
        compute_ratio=par.get("compute_ratio", np.nan),
        token_ratio=par.get("token_ratio", np.nan),
        params_ratio=par.get("params_ratio", np.nan),
        covered=int(cover.sum()),
        gates=len(cover),
        const_vs_mono=const_vs_mono,
    )
    return head


def leaderboard_box(s: Study) -> Headline | None:
    """The leaderboard's answer as a headline box (at the top and on the landing page): the best
    method on the worst mixture, its interval against the SPD gate, the best free baseline."""
    from ..leaderboard import leaderboard_headline

    if HEAD_GATE not in set(s.nll_mix["method"]):
        return None
    return Headline(f"leaderboard ({s.match}-matched)", leaderboard_headline(s.board))


def leaderboard(s: Study) -> Section | None:
    """Every method against the SPD gate (`modgen_bench.leaderboard`)."""
    from ..leaderboard import leaderboard_section

    if HEAD_GATE not in set(s.nll_mix["method"]):
        return None
    return leaderboard_section(s.df, s.fig_dir, s.conv, s.exp, s.names or None, s.match, lb=s.board)


def setup(s: Study) -> Section:
    """Parameter counts, the matching convention and its ratios, lam*; units and replicates."""
    df = s.df
    pc = df[df["case"] == "params"].groupby(["method", "metric"])["value"].first().reset_index()
    lam = df[df["case"] == "lam_star"].groupby(["method", "metric"])["value"].agg(_mse)
    counts = dict(zip(pc["method"] + ":" + pc["metric"], pc["value"], strict=True))
    text = prose(
        PROSE,
        "setup",
        match=s.match,
        bytes=(df["metric"] == "bits_per_byte").any(),
        experts_plus_gate=counts.get("experts_plus_gate:n_params", 0),
        expert=counts.get("expert:n_params", 0),
        gate=counts.get("gate:n_params", 0),
        mono=counts.get("mono:n_params", 0),
        d_model=counts.get("mono:d_model", 0),
        steps=counts.get("mono:steps", np.nan),
    )
    return Section(
        "Setup",
        text,
        tables=[
            (f"Parameter counts and matching ratios {s.conv}", pc),
            (f"Least-favourable mixture lam* from SPD (mean ± s.e.) {s.conv}", lam.reset_index()),
        ],
    )


def _table2(s: Study) -> pd.DataFrame:
    """Paired differences a - b per mixture: the excess gate against every rival, the free
    baselines against the monolith, the two gates against each other."""
    nll, df = s.nll_mix, s.df
    others = ["mono_uniform", "mono_lamstar", "const_gate", "bayes_router"]
    return pd.concat(
        [
            _paired(nll, df, HEAD_GATE, others),
            _paired(nll, df, "const_gate", ["mono_uniform"]),
            _paired(nll, df, "bayes_router", ["mono_uniform"]),
            _paired(nll, df, "gate_excess_logZ", ["gate_nll_logZ"]),
        ],
        ignore_index=True,
    )


def tables(s: Study) -> Section:
    """Table 1 (absolute NLL), Table 2 (paired differences), the oracle retrains, the gates' NLL
    bands from Z's interval, and the NLL-per-mixture figure."""
    df, conv = s.df, s.conv
    t2 = _table2(s)
    tabs = [
        (
            f"Table 1: test NLL per token, mean ± s.e. over {s.n_rep} replicates {conv}",
            _table1(s.nll_mix, s.methods),
        ),
        (f"Table 2: paired differences a - b in test NLL per token per mixture {conv}", t2),
    ]
    orc = s.nll[s.nll["method"].str.startswith("oracle_")]
    if len(orc):
        tabs.append(
            (
                f"Oracle retrains on their own mixture, NLL per token {conv}",
                orc.groupby("lam")["value"].agg(_mse).reset_index(),
            )
        )
    band = df[(df["case"] == "test") & df["metric"].isin(["nll_per_token_lo", "nll_per_token_hi"])]
    if len(band):
        b = band[band["lam"].isin(s.mix)].pivot_table(
            index=["method", "lam"], columns="metric", values="value"
        )
        tabs.append(
            (
                "Gate NLL interval from Z's 95% interval: [NLL + log Z_lo/(T-1), NLL + log "
                f"Z_hi/(T-1)], mean over replicates {conv}",
                b.reset_index(),
            )
        )
    wins = (
        [_wins(t2, HEAD_GATE, b) for b in ("mono_uniform", "const_gate", "bayes_router")]
        if len(t2)
        else None
    )
    png, alt = mixtures_figure(s)
    return Section(
        "Table 1 and Table 2",
        prose(PROSE, "tables", wins=wins),
        tables=tabs,
        figures=[(f"Test NLL per token on each mixture (mean over replicates) {conv}", png, alt)],
    )


def per_domain(s: Study) -> Section:
    """Per-domain bits per byte (per token under a subword tokenizer) and the routing-cost split
    of gate minus monolith on each domain."""
    df = s.df
    unit = "bits_per_byte" if (df["metric"] == "bits_per_byte").any() else "bits_per_token"
    words, short = unit.replace("_", " "), "bpb" if unit == "bits_per_byte" else "bits/token"
    bpb = df[(df["case"] == "test") & (df["metric"] == unit) & (df["resample"] == 0)]
    vert = bpb[bpb["lam"].map(lambda lam: _lam(lam).max() == 1.0)]
    vert = vert[~vert["method"].isin(["gate_excess", "gate_nll"])]  # proper likelihoods only
    per = vert.groupby(["method", "lam"])["value"].mean().unstack("lam")
    per.columns = [f"{short} on {c}" for c in per.columns]
    split = df[df["case"] == "routing_split"]
    split_t = split.groupby(["lam", "metric"])["value"].agg(_mse).unstack("metric").reset_index()
    if len(split_t):
        split_t.insert(
            0,
            "domain",
            [s.names[int(np.argmax(_lam(lam)))] if len(s.names) else lam for lam in split_t["lam"]],
        )
    return Section(
        f"Per-domain {words} and the routing-cost split",
        prose(PROSE, "per_domain", names=s.names),
        tables=[
            (f"Per-domain test {words}, mean over seeds {s.conv}", per.reset_index()),
            (f"Gate vs monolith on each domain, split (nats/token, mean ± s.e.) {s.conv}", split_t),
        ],
    )


def sampling(s: Study) -> Section:
    """The router's distillation gap, Z on fresh draws with its interval, SIR and rejection."""
    df = s.df
    gap = _paired(s.nll_mix, df, "router", [HEAD_GATE])
    zs = (
        df[df["case"].isin(["Z", "sampling"])]
        .groupby(["method", "metric"])["value"]
        .agg(_mse)
        .unstack("metric")
        .reset_index()
    )
    z, cover = _z(df)
    if len(z):
        z["interval holds 1"] = cover.values
    return Section(
        "Structural distillation and sampling",
        prose(PROSE, "sampling"),
        tables=[
            (f"Router minus the excess gate, paired per mixture {s.conv}", gap),
            (f"Z on fresh draws per gate and replicate (95% interval) {s.conv}", z),
            (f"Z, SIR ESS, rejection acceptance (mean ± s.e.) {s.conv}", zs),
        ],
    )


def conflict(s: Study) -> Section:
    """Mean pairwise cosine of per-domain gradients along training, gate against monolith."""
    conf = s.df[s.df["case"] == "conflict"]
    late = conf[conf["progress"] >= 0.5].groupby("method")["value"]
    late_mean = late.mean()
    png, alt = conflict_figure(conf, s.fig_dir / f"{s.exp}_conflict", late_mean)
    late = late.agg(_mse).reset_index()
    late.columns = ["method", "mean pairwise cosine, second half of training"]
    gate, mono = late_mean.get("gate_excess", np.nan), late_mean.get("mono_uniform", np.nan)
    more = late_mean.get("gate_excess", 0) < late_mean.get("mono_uniform", 0)
    verdict = "more" if more else "less"
    return Section(
        "Gradient conflict",
        prose(PROSE, "conflict", verdict=verdict, gate=gate, mono=mono),
        tables=[
            (
                "Gradient conflict late in training (mean ± s.e. over logged steps "
                f"and replicates) {s.conv}",
                late,
            )
        ],
        figures=[("Gradient conflict along training (mean ± std band over replicates)", png, alt)],
    )


#: the report's sections in order; a builder returns None when its rows are absent
SECTIONS = (headline, leaderboard_box, leaderboard, setup, tables, per_domain, sampling, conflict)


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    """The study's sections (`SECTIONS`) from its tidy rows alone."""
    s = study(df, fig_dir)
    return [sec for build in SECTIONS if (sec := build(s)) is not None]
