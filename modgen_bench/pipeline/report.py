"""The real-text study's report from its tidy rows alone (PAPER.md section 5, Tables 1-2).

``report(df, fig_dir) -> [Section]`` is what a suite plug-in exposes. One statistics convention
everywhere (issue 13, item 6; `modgen_bench.stats`): a comparison is a paired difference a - b
(NLL per token, negative = a better) with its 95% t-interval over replicates
(`stats.paired_table`) and the per-window paired s.e. (case ``paired`` rows, averaged over
replicates); a "win" only where the interval excludes 0. Gates enter only as proper
likelihoods (``gate_*_logZ``: divided by Z_hat from fresh draws, Z's interval carried into the
NLL). Every table caption names the monolith's matching convention (`modgen_bench.matching`).
The headline box at the top is `reporting.gate_vs_monolith_headline` for gate_excess_logZ
against mono_uniform. Figures: PNG + SVG with alt text (`reporting.save_figure`), legends
outside the data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["report", "GATES", "RETRAINS", "BASELINES"]

GATES = ["gate_excess_logZ", "gate_nll_logZ", "router"]
BASELINES = ["const_gate", "bayes_router"]
RETRAINS = ["mono_uniform", "mono_lamstar"]
HEAD_GATE, HEAD_MONO = "gate_excess_logZ", "mono_uniform"


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
    return df.assign(rep=df["seed"].astype(int).astype(str) + "/" + df["resample"].astype(int).astype(str))


def _convention(df: pd.DataFrame) -> tuple[str, str]:
    """(match, caption suffix naming the convention, r, compute and token ratios)."""
    match = str(df["match"].dropna().iloc[0]) if "match" in df.columns and df["match"].notna().any() else "params"
    par = df[(df["case"] == "params") & (df["method"] == "mono")].groupby("metric")["value"].mean()
    parts = [f"monolith matched by {match}"]
    for key, name in (("r_nonembedding", "r"), ("compute_ratio", "compute ratio"), ("token_ratio", "token ratio")):
        if key in par:
            parts.append(f"{name} {par[key]:.2f}")
    return match, "[" + ", ".join(parts) + "]"


def _table1(nll: pd.DataFrame, methods) -> pd.DataFrame:
    """NLL/token: uniform mixture, worst vertex and mean over mixtures; mean ± s.e. over replicates."""
    uniform = next(l for l in nll["lam"].unique() if np.ptp(_lam(l)) < 1e-3)
    vertex = nll["lam"].map(lambda l: _lam(l).max() == 1.0)
    rows = []
    for m in methods:
        gm = nll[nll["method"] == m]
        rows.append({"method": m,
                     "uniform mixture": _mse(gm[gm["lam"] == uniform]["value"]),
                     "worst vertex": _mse(gm[vertex.loc[gm.index]].groupby("rep")["value"].max()),
                     "mean of mixtures": _mse(gm.groupby("rep")["value"].mean())})
    return pd.DataFrame(rows)


def _paired(nll: pd.DataFrame, df: pd.DataFrame, a: str, others) -> pd.DataFrame:
    """``stats.paired_table`` of a - other per mixture over replicates, with the mean per-window
    paired s.e. of the same difference (case 'paired') beside it."""
    from ..stats import paired_table
    t = paired_table(nll, a, [o for o in others if o in set(nll["method"])], index="lam", unit="rep")
    if not len(t):
        return t
    win = df[(df["case"] == "paired") & (df["metric"] == "delta_window_se")]
    se = win.groupby(["method", "lam"])["value"].mean()
    t["window s.e."] = [se.get((f"{x}-vs-{y}", l), np.nan) for x, y, l in zip(t["a"], t["b"], t["lam"])]
    return t[["lam", "a", "b", "cell", "n", "window s.e.", "verdict"]].rename(
        columns={"cell": "a - b: mean [95% t-interval]"})


def _wins(t: pd.DataFrame, a: str, b: str) -> str:
    sub = t[(t["a"] == a) & (t["b"] == b)]
    return (f"{a} better on {int((sub['verdict'] == f'{a} wins').sum())}, {b} better on "
            f"{int((sub['verdict'] == f'{b} wins').sum())}, undecided on "
            f"{int((sub['verdict'] == 'undecided').sum())} of {len(sub)} mixtures")


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modgen_bench.reporting import (
        Section,
        gate_vs_monolith_headline,
        legend_outside,
        save_figure,
    )

    df = df.copy()
    for col in ("value", "seed", "resample", "step", "progress"):   # CSV blanks -> NaN
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df["resample"] = df["resample"].fillna(0).astype(int)
    df = _reps(df)
    fig_dir = Path(fig_dir)
    exp = str(df["experiment"].iloc[0]) if "experiment" in df.columns else "real_world"
    match, conv = _convention(df)
    nll = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    mix = [l for l in nll["lam"].unique() if not nll[nll["lam"] == l]["method"].str.startswith("oracle").all()]
    nll_mix = nll[nll["lam"].isin(mix)]
    methods = [m for m in GATES + BASELINES + RETRAINS if m in set(nll["method"])]
    n_rep = nll["rep"].nunique()
    sections = []

    # headline: gate minus monolith per mixture with intervals
    par = df[(df["case"] == "params") & (df["method"] == "mono")].groupby("metric")["value"].mean()
    z = df[df["case"] == "Z"].pivot_table(index=["method", "rep"], columns="metric", values="value").reset_index()
    cover = ((z["Z_lo"] <= 1) & (z["Z_hi"] >= 1)) if len(z) else pd.Series(dtype=bool)
    if {HEAD_GATE, HEAD_MONO} <= set(nll_mix["method"]):
        head = gate_vs_monolith_headline(nll_mix, HEAD_GATE, HEAD_MONO, fig_dir, "nll_per_token", unit="nats/token",
                                         title=f"gate vs monolith ({match}-matched)",
                                         xlabel="test mixture (lam)", pair_on=("seed", "resample"))
        t_base = _paired(nll_mix, df, "const_gate", ["mono_uniform"]) if "const_gate" in set(nll_mix["method"]) else None
        head.text += (f" Monolith matched by **{match}**: non-embedding ratio r = {par.get('r_nonembedding', np.nan):.2f}, "
                      f"compute ratio {par.get('compute_ratio', np.nan):.2f}, token ratio "
                      f"{par.get('token_ratio', np.nan):.2f}, total-parameter ratio {par.get('params_ratio', np.nan):.2f}. "
                      f"The gate is graded as a proper likelihood (divided by Z_hat on fresh draws from q); "
                      f"its Z's 95% interval holds 1 for {int(cover.sum())} of {len(cover)} gates.")
        if t_base is not None and len(t_base):
            head.text += f" Constant 1/p gate vs the monolith: {_wins(t_base, 'const_gate', 'mono_uniform')}."
        sections.append(head)

    if HEAD_GATE in set(nll_mix["method"]):    # every method against the SPD gate (`leaderboard`)
        from ..leaderboard import leaderboard_section
        names = [m[len("lam_"):] for m in df[df["case"] == "lam_star"]["metric"].drop_duplicates()]
        sections.append(leaderboard_section(df, fig_dir, conv, exp, names or None, match))

    # setup: parameter counts, matching, lam*
    pc = df[df["case"] == "params"].groupby(["method", "metric"])["value"].first().reset_index()
    lam = df[df["case"] == "lam_star"].groupby(["method", "metric"])["value"].agg(_mse).reset_index()
    counts = dict(zip(pc["method"] + ":" + pc["metric"], pc["value"]))
    setup = (f"Experts + gate hold {counts.get('experts_plus_gate:n_params', 0):,.0f} parameters "
             f"(each expert {counts.get('expert:n_params', 0):,.0f}, gate {counts.get('gate:n_params', 0):,.0f}); "
             f"the monolithic retrain holds {counts.get('mono:n_params', 0):,.0f} "
             f"(d_model {counts.get('mono:d_model', 0):.0f}, {counts.get('mono:steps', np.nan):.0f} steps). "
             f"Matching convention: **{match}** (`modgen_bench.matching`; 'params' = total parameters of "
             "experts + gate, the suite's convention before issue 13). r is the monolith's non-embedding "
             "parameter count over the experts' combined; compute and token ratios are monolith over "
             "experts' combined training FLOPs and tokens. "
             + ("NLL is in nats per byte-token on held-out test documents; bits per byte = NLL / ln 2. "
                if (df["metric"] == "bits_per_byte").any() else
                "NLL is in nats per token of the experts' tokenizer on held-out test documents; bits "
                "per token = NLL / ln 2. ")
             + "Replicates: each (seed, data resample) pair; seeds vary "
             "initialisation and training order on resample 0, resamples redraw the document split. "
             "Intervals: 95% Student t over replicates of the paired difference; 'window s.e.' is the "
             "per-window paired standard error within a replicate (mean over replicates).")
    sections.append(Section("Setup", setup, tables=[(f"Parameter counts and matching ratios {conv}", pc),
                                                    (f"Least-favourable mixture lam* from SPD (mean ± s.e.) {conv}", lam)]))

    # Table 1 (absolute) and Table 2 (paired differences)
    t1 = _table1(nll_mix, methods)
    others = ["mono_uniform", "mono_lamstar", "const_gate", "bayes_router"]
    t2 = pd.concat([_paired(nll_mix, df, HEAD_GATE, others),
                    _paired(nll_mix, df, "const_gate", ["mono_uniform"]),
                    _paired(nll_mix, df, "bayes_router", ["mono_uniform"]),
                    _paired(nll_mix, df, "gate_excess_logZ", ["gate_nll_logZ"])], ignore_index=True)
    orc = df[(df["case"] == "test") & (df["metric"] == "nll_per_token") & df["method"].str.startswith("oracle_")]
    tables = [(f"Table 1: test NLL per token, mean ± s.e. over {n_rep} replicates {conv}", t1),
              (f"Table 2: paired differences a - b in test NLL per token per mixture {conv}", t2)]
    if len(orc):
        tables.append((f"Oracle retrains on their own mixture, NLL per token {conv}",
                       orc.groupby("lam")["value"].agg(_mse).reset_index()))
    band = df[(df["case"] == "test") & df["metric"].isin(["nll_per_token_lo", "nll_per_token_hi"])]
    if len(band):
        b = band[band["lam"].isin(mix)].pivot_table(index=["method", "lam"], columns="metric", values="value")
        tables.append((f"Gate NLL interval from Z's 95% interval: [NLL + log Z_lo/(T-1), NLL + log Z_hi/(T-1)], "
                       f"mean over replicates {conv}", b.reset_index()))
    text = ("Gates are proper likelihoods only: gate_*_logZ = -log(pi_g / Z_hat) per token, Z_hat from fresh "
            "draws from q (never SPD's proposal pool). Baselines: const_gate is the constant 1/p gate "
            "(Z = 1 exactly), bayes_router the Bayes-posterior causal router over the experts (free, no "
            "training; with a uniform prior its product of posteriors telescopes to (1/p) sum_k E[k](x), "
            "so on whole windows it equals the constant gate: both are computed independently). " + (f"{_wins(t2, HEAD_GATE, 'mono_uniform')}; {_wins(t2, HEAD_GATE, 'const_gate')}; "
                             f"{_wins(t2, HEAD_GATE, 'bayes_router')}. " if len(t2) else "")
            + "Cross-entropy is linear in lam, so its worst case over the simplex is the worst vertex "
            "(Table 1). For KL the worst case is also at a vertex (KL(P_lam||pi) <= sum_k lam_k "
            "KL(P_k||pi), PAPER.md section 2), but not necessarily the same one: the domain entropies are "
            "unknown; the excess over the domain's best expert (entropy cancelled) is reported per domain below.")
    sections.append(Section("Table 1 and Table 2", text, tables=tables))

    # per-domain bits per byte (per token under a subword tokenizer) and the routing-cost split
    unit = "bits_per_byte" if (df["metric"] == "bits_per_byte").any() else "bits_per_token"
    words, short = unit.replace("_", " "), "bpb" if unit == "bits_per_byte" else "bits/token"
    bpb = df[(df["case"] == "test") & (df["metric"] == unit) & (df["resample"] == 0)]
    vert = bpb[bpb["lam"].map(lambda l: _lam(l).max() == 1.0)]
    vert = vert[~vert["method"].isin(["gate_excess", "gate_nll"])]     # proper likelihoods only
    per = vert.groupby(["method", "lam"])["value"].mean().unstack("lam")
    names = [m[len("lam_"):] for m in df[df["case"] == "lam_star"]["metric"].drop_duplicates()]
    per.columns = [f"{short} on {c}" for c in per.columns]
    split = df[df["case"] == "routing_split"]
    split_t = split.groupby(["lam", "metric"])["value"].agg(_mse).unstack("metric").reset_index()
    if len(split_t):
        split_t.insert(0, "domain", [names[int(np.argmax(_lam(l)))] if len(names) else l for l in split_t["lam"]])
    sections.append(Section(f"Per-domain {words} and the routing-cost split",
                            f"Vertices are the domains in order {names}; mean over seeds. On domain k's "
                            "windows, gate_excess_logZ - mono_uniform (nats/token) = routing_proper "
                            "(gate - constant 1/p gate: what the trained gate adds or loses) + domain_prior "
                            "(constant gate - expert k, at most log p / (T-1): the price of not knowing the "
                            "domain, which a monolith pays too) + expert_deficit (expert k - monolith). A gate "
                            "can win only where the experts beat the monolith on their own domains.",
                            tables=[(f"Per-domain test {words}, mean over seeds {conv}", per.reset_index()),
                                    (f"Gate vs monolith on each domain, split (nats/token, mean ± s.e.) {conv}", split_t)]))

    # distillation and sampling
    gap = _paired(nll_mix, df, "router", [HEAD_GATE])
    zs = df[df["case"].isin(["Z", "sampling"])].groupby(["method", "metric"])["value"].agg(_mse).unstack("metric").reset_index()
    zt = z.copy()
    if len(zt):
        zt["interval holds 1"] = cover.values
    sections.append(Section("Structural distillation and sampling",
                            "The causal router is trained on sequences rejection-sampled from the excess "
                            "gate's model, with the experts' per-token probabilities cached. Z_hat is the "
                            "control-variate importance-sampling estimate of the normaliser on fresh draws "
                            "from q with its 95% interval (Z_plain: the plain mean of pi_g/q); SPD drives Z "
                            "towards 1 (an equality: its multiplier mu takes either sign) and Z = 1 is then "
                            "restored on separate draws (train rows Z_restore_*). "
                            "Rejection acceptance estimates Z/p; with Z = 1 it equals the 1/p bound. SIR's "
                            "ESS fraction is (sum w)^2 / (n sum w^2).",
                            tables=[(f"Router minus the excess gate, paired per mixture {conv}", gap),
                                    (f"Z on fresh draws per gate and replicate (95% interval) {conv}", zt),
                                    (f"Z, SIR ESS, rejection acceptance (mean ± s.e.) {conv}", zs)]))

    # gradient conflict
    conf = df[df["case"] == "conflict"].copy()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for m, g in conf.groupby("method"):
        c = g.groupby("progress")["value"].agg(["mean", "std"]).reset_index()
        ax.plot(c["progress"], c["mean"], marker="o", ms=3, label=m)
        ax.fill_between(c["progress"], c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0), alpha=0.2)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("training progress (fraction of steps)")
    ax.set_ylabel("mean pairwise cosine")
    legend_outside(ax)
    late_mean = conf[conf["progress"] >= 0.5].groupby("method")["value"].mean()
    alt = ("Mean pairwise cosine between per-domain gradients along training; second-half means: "
           + ", ".join(f"{m} {v:+.3f}" for m, v in late_mean.items()))
    fig1 = save_figure(fig, fig_dir / f"{exp}_conflict", alt=alt)
    late = conf[conf["progress"] >= 0.5].groupby("method")["value"].agg(_mse).reset_index()
    late.columns = ["method", "mean pairwise cosine, second half of training"]
    verdict = ("more" if late_mean.get("gate_excess", 0) < late_mean.get("mono_uniform", 0) else "less")
    sections.append(Section("Gradient conflict",
                            "Mean pairwise cosine between per-domain gradients (lower = more conflict), "
                            "for the monolith (its NLL per domain) and for the gate (the gated model's NLL "
                            "per domain, gradient over the gate only). Late in training the excess gate's "
                            f"domains conflict {verdict} than the monolith's "
                            f"({late_mean.get('gate_excess', float('nan')):+.3f} vs "
                            f"{late_mean.get('mono_uniform', float('nan')):+.3f}). A gate's per-domain "
                            "gradients pull g(x, .) toward different experts, so a routing problem "
                            "conflicts by construction (pure routing between p experts gives about "
                            "-1/(p-1)); the paper's claim that the gate mitigates conflict is read here as "
                            "'the experts, trained apart, see no conflict at all', which this metric "
                            "cannot show.",
                            tables=[(f"Gradient conflict late in training (mean ± s.e. over logged steps and replicates) {conv}", late)],
                            figures=[("Gradient conflict along training (mean ± std band over replicates)", fig1, alt)]))

    # NLL across mixtures: proper likelihoods solid, the unnormalised gates dashed in the same colour
    fig, ax = plt.subplots(figsize=(8, 3.8))
    order = list(dict.fromkeys(mix))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    means = {}
    for i, m in enumerate(methods):
        colour = colours[i % len(colours)]
        c = nll_mix[nll_mix["method"] == m].groupby("lam")["value"].mean().reindex(order)
        means[m] = c
        ax.plot(range(len(order)), c.values, marker="o", color=colour, label=m)
        raw = m.removesuffix("_logZ")
        if raw != m and raw in set(nll_mix["method"]):
            r = nll_mix[nll_mix["method"] == raw].groupby("lam")["value"].mean().reindex(order)
            ax.plot(range(len(order)), r.values, ls="--", lw=1, marker="x", ms=4, color=colour,
                    label=f"{raw} (unnormalised, not a likelihood)")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("test mixture lam (weights of the domains in corpus order)")
    ax.set_ylabel("test NLL (nats/token)")
    ax.set_title(f"Test NLL per mixture, mean over {n_rep} replicates ({match}-matched monolith)", fontsize=9)
    legend_outside(ax)
    alt = ("Test NLL per token per mixture, mean over replicates: "
           + "; ".join(f"{m}: " + ", ".join(f"{v:.3f}" for v in c.values) for m, c in means.items())
           + f"; mixtures in order {order}")
    fig2 = save_figure(fig, fig_dir / f"{exp}_mixtures", alt=alt)
    sections[[s.title for s in sections].index("Table 1 and Table 2")].figures.append(
        (f"Test NLL per token on each mixture (mean over replicates) {conv}", fig2, alt))
    return sections
