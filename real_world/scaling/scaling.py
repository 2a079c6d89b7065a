"""The decisive gate-vs-monolith experiment (issue 13): a thin plug-in over `modgen_bench.scaling`.

Every (triple, expert size, seed) is one launcher job (`modgen_bench.launch`); the job trains
the experts and the SPD gate per budget, grades the gate as a proper likelihood (Z on fresh
draws), the constant gate and the Bayes-posterior router, and monoliths at each target
non-embedding ratio r under each matching convention. The report pools seeds with paired t
intervals (`modgen_bench.stats`), fits the crossover (`modgen_bench.crossover`) and states a
verdict on the paper's Table 1 claim per convention.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from modgen_bench.launch import LaunchSpec, launch_into
from modgen_bench.scaling import ScalingConfig, cell_jobs, crossover_table
from modgen_bench.stats import paired_t_interval

Config = ScalingConfig

CELL = ["case", "convention", "expert_d", "budget", "r_target"]


def run(ctx) -> None:
    ScalingConfig.from_dict(ctx.config)                  # errors before any job starts
    spec = getattr(ctx, "launch", None) or LaunchSpec()
    jobs = cell_jobs(ctx.config, ctx.device, progress=spec.launcher == "serial")
    launch_into(ctx, jobs, spec)


def _num(df, cols):
    df = df.copy()
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def seed_intervals(df: pd.DataFrame, method: str, metric: str, a: str = "gate",
                   b: str = "monolith") -> pd.DataFrame:
    """Per cell: the seed-paired 95% t interval of ``metric`` rows of ``method`` (already paired
    differences, one per seed), plus how many seeds' window bootstraps exclude 0 each way."""
    d = df[df["method"].eq(method) & df["metric"].eq(metric)]
    lo = df[df["method"].eq(method) & df["metric"].eq(f"{metric}_boot_lo")]
    hi = df[df["method"].eq(method) & df["metric"].eq(f"{metric}_boot_hi")]
    keys = [c for c in CELL if c in d and d[c].notna().any()]
    out = []
    for key, g in d.groupby(keys, dropna=False):
        iv = paired_t_interval(g["value"].to_numpy())
        sel = lambda t: t.set_index(keys + ["seed"])["value"]
        b_lo = sel(lo).reindex(g.set_index(keys + ["seed"]).index)
        b_hi = sel(hi).reindex(g.set_index(keys + ["seed"]).index)
        out.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                    "r": g["r"].mean() if "r" in g else np.nan,
                    "compute_ratio": g["compute_ratio"].mean() if "compute_ratio" in g else np.nan,
                    "mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n, "verdict": iv.verdict
                    .replace("a wins", f"{a} better").replace("b wins", f"{b} better"),
                    f"seeds_boot_{a}": int((b_hi < 0).sum()), f"seeds_boot_{b}": int((b_lo > 0).sum())})
    return pd.DataFrame(out).dropna(axis=1, how="all")


def _interval_text(row) -> str:
    """'mean [lo, hi]' of a cell; with one seed there is no t interval, and it says so."""
    lo, hi = row.get("lo", np.nan), row.get("hi", np.nan)
    if pd.isna(lo) or pd.isna(hi):
        return f"{row['mean']:+.4f} (one seed: no interval)"
    return f"{row['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table1_verdict(cells: pd.DataFrame, worst: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 claim (gate better than an equal-size monolith on every mixture) per
    (case, convention, budget) at the ratio nearest r = 1: 'supported' only when both the
    uniform-mixture and the worst-vertex intervals lie below 0, 'contradicted' when either lies
    above 0, else 'undecided'."""
    out = []
    for (case, conv, size, B), g in cells.groupby(["case", "convention", "expert_d", "budget"]):
        row = g.iloc[(np.log(g["r"].astype(float))).abs().argmin()]
        w = worst[(worst["case"] == case) & (worst["convention"] == conv) & (worst["expert_d"] == size)
                  & (worst["budget"] == B) & (worst["r_target"] == row["r_target"])]
        wrow = w.iloc[0] if len(w) else None
        both = [row["verdict"]] + ([wrow["verdict"]] if wrow is not None else [])
        verdict = ("supported" if all(v == "gate better" for v in both) else
                   "contradicted" if any(v == "monolith better" for v in both) else "undecided")
        out.append({"case": case, "convention": conv, "expert_d": size, "budget": B,
                    "r": round(float(row["r"]), 3),
                    "uniform": _interval_text(row),
                    "worst vertex": _interval_text(wrow) if wrow is not None else "",
                    "verdict": verdict})
    return pd.DataFrame(out)


def _headline(verdict: pd.DataFrame, xo: pd.DataFrame, path) -> "Headline":
    """The answer at a glance: Table 1 verdict counts per matching convention (at r nearest 1)
    and the fitted crossover r* per convention, with the crossover figure."""
    from modgen_bench.reporting import Headline
    from modgen_bench.reporting.figures import Figure
    lines, counts = [], {}
    for conv, g in verdict.groupby("convention"):
        n = g["verdict"].value_counts()
        for k, v in n.items():
            counts[f"{conv}: {k}"] = int(v)
        x = xo[(xo["convention"] == conv) & xo["r_star"].notna()] if len(xo) else xo
        seeds = (x[["lo_seeds", "hi_seeds"]].dropna() if "lo_seeds" in x else x.iloc[:0])
        span = (f"; seed-level 95% t intervals span {seeds['lo_seeds'].min():.2f} to "
                f"{seeds['hi_seeds'].max():.2f} ({len(seeds)} fits where every seed crosses)"
                if len(seeds) else "; no fit where every seed crosses on its own")
        cross = (f"fitted crossover r* from {x['r_star'].min():.2f} to {x['r_star'].max():.2f} over "
                 f"{len(x)} of {int((xo['convention'] == conv).sum())} triple x budget fits{span}"
                 if len(x) else "no crossover in the ratios swept (the sign of gate - monolith never "
                 "changes with r)")
        lines.append(f"- **{conv}-matched**: Table 1 claim at r ~ 1 "
                     + ", ".join(f"{k} in {v}" for k, v in n.items())
                     + f" of {len(g)} cells; {cross}.")
    text = ("Does the gate beat a monolith of equal non-embedding size (the paper's Table 1: better "
            "on every mixture)? 'Supported' only when the seed-paired 95% intervals of gate - "
            "monolith at the uniform mixture and at the worst vertex both lie below 0.\n\n"
            + "\n".join(lines))
    tone = ("bad" if verdict["verdict"].eq("contradicted").any() else
            "ok" if verdict["verdict"].eq("supported").all() else "neutral")
    fig = Figure("gate - monolith vs the non-embedding ratio r, per triple and convention (95% "
                 "t intervals over seeds; dotted: fitted r*)", Path(path),
                 alt="gate minus monolith NLL per token against r for each triple, budget and "
                     "matching convention, with the fitted crossover")
    return Headline("Gate vs monolith: Table 1 verdict and crossover r* per matching convention",
                    text, counts=counts, figure=fig, tone=tone)


def _t_half(values) -> float:
    """Half-width of the seed-paired 95% t interval (the tables' rule)."""
    iv = paired_t_interval(np.asarray(values, dtype=float))
    return (iv.hi - iv.lo) / 2


def _figure(deltas, xo, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    from modgen_bench.reporting import legend_outside, save_figure
    cases, convs = sorted(deltas["case"].unique()), sorted(deltas["convention"].unique())
    fig, axes = plt.subplots(len(cases), len(convs), figsize=(5.2 * len(convs), 3.4 * len(cases)),
                             squeeze=False)
    panels = [(c, v) for c in cases for v in convs]
    for ax, (case, conv) in zip(axes.ravel(), panels):
        g = deltas[(deltas["case"] == case) & (deltas["convention"] == conv)]
        for j, (B, gb) in enumerate(sorted(g.groupby("budget"))):
            m = gb.groupby("r_target").agg(r=("r", "mean"), mean=("value", "mean"),
                                           half=("value", _t_half)).sort_values("r")
            ax.errorbar(m["r"], m["mean"], yerr=m["half"].fillna(0), marker="o", capsize=2,
                        color=f"C{j}", label=f"budget {int(B)} steps")
            x = xo[(xo["case"] == case) & (xo["convention"] == conv) & (xo["budget"] == B)]
            if len(x) and np.isfinite(x["r_star"].iloc[0]):
                ax.axvline(x["r_star"].iloc[0], color=f"C{j}", ls=":", lw=1)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ticks = sorted(g["r_target"].unique())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("r = monolith / experts' non-embedding parameters")
        ax.set_title(f"{case}, {conv}-matched", fontsize=9)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("gate - monolith, NLL/token (nats)\n(< 0: gate better)", fontsize=8)
    legend_outside(axes[0][-1], fontsize=7)
    alt = ("gate minus monolith NLL per token against the non-embedding ratio r, per triple and "
           "matching convention, one line per budget, with fitted crossovers r*: " + "; ".join(
               f"{c} {v} budget {int(b)}: r* {r:.3g}" for c, v, b, r in
               zip(xo.get("case", []), xo.get("convention", []), xo.get("budget", []), xo.get("r_star", []))))
    return save_figure(fig, path, alt=alt, dpi=110)     # PNG + SVG, atomically


Z_COLUMNS = ["Z_fresh_spd", "z_score_spd", "1 in interval_spd", "Z_restore_z_before",
             "Z_restore_steps", "Z_restore_converged", "Z_fresh", "Z_fresh_lo", "Z_fresh_hi",
             "z_score", "1 in interval", "Z_restore_se", "z_score_combined", "Z_fresh_plain",
             "Z_pool", "Z_hat_ema"]


def z_calibration(zt: pd.DataFrame, level: float = 0.95) -> dict:
    """Is every gate's Z consistent with 1? Per gate: 1 inside its 95% interval (about 5% of
    exactly normalised gates miss by chance). For the family of n gates: a Bonferroni test (every
    |Z - 1| / se <= z_{1 - 0.025/n}: a 95% simultaneous statement) and a chi-square test of
    sum ((Z - 1) / se)^2 against chi2(n). Adds ``1 in interval`` and ``z_score`` columns."""
    from scipy.stats import chi2, norm
    for col, name in (("Z_fresh", ""), ("Z_fresh_spd", "_spd")):
        if {col, col + "_lo", col + "_hi", col + "_se"} <= set(zt):
            zt["1 in interval" + name] = (zt[col + "_lo"] <= 1) & (1 <= zt[col + "_hi"])
            zt["z_score" + name] = (zt[col] - 1) / zt[col + "_se"].where(zt[col + "_se"] > 0)
    if "z_score" not in zt:
        return {"text": "", "n": 0}
    score = zt["z_score"].fillna(0.0).to_numpy()
    n, max_z = len(score), float(np.abs(score).max())
    crit = float(norm.ppf(1 - (1 - level) / (2 * n)))
    p_chi2 = float(chi2.sf(float(score @ score), n))
    inside = int(zt["1 in interval"].sum())
    spd = int(zt["1 in interval_spd"].sum()) if "1 in interval_spd" in zt else None
    combined = ""
    if "Z_restore_se" in zt:
        # the restoration puts the true Z on 1 only to within its own s.e. on its draws
        zt["z_score_combined"] = (zt["Z_fresh"] - 1) / np.hypot(zt["Z_fresh_se"], zt["Z_restore_se"])
        zc = np.abs(zt["z_score_combined"].fillna(0.0).to_numpy())
        combined = (f" With the restoration's own s.e. added (Z - 1 ~ N(0, se_fresh^2 + "
                    f"se_restore^2) at a perfect restoration): {int((zc <= norm.ppf(0.5 + level / 2)).sum())} "
                    f"of {n} within 95%, max |z| {zc.max():.2f}.")
    text = (f"{inside} of {n} restored gates have 1 inside their 95% interval (about "
            f"{(1 - level) * n:.1f} misses expected by chance at Z = 1 exactly); largest |Z - 1| / se "
            f"= {max_z:.2f} against the Bonferroni bound {crit:.2f} for {n} gates "
            f"({'every gate consistent with Z = 1' if max_z <= crit else 'some gate NOT consistent with Z = 1'}"
            f", simultaneous 95%); chi-square test of sum z^2 on {n} d.o.f.: p = {p_chi2:.3g}."
            + (f" SPD's gates before the restoration: {spd} of {n}." if spd is not None else "")
            + combined)
    return {"text": text, "n": n, "inside": inside, "inside_spd": spd, "max_abs_z": max_z,
            "bonferroni": crit, "p_chi2": p_chi2}


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    from modgen_bench.reporting import Section
    fig_dir = Path(fig_dir)
    df = _num(df, ["budget", "r_target", "r", "compute_ratio", "token_ratio", "expert_d", "seed",
                   "mono_d", "mono_steps"])
    uni = seed_intervals(df, "gate-vs-mono", "delta_uniform")
    worst = seed_intervals(df, "gate-vs-mono", "delta_worst")
    const_mono = seed_intervals(df, "const-vs-mono", "delta_uniform", a="constant gate")
    deltas = df[df["method"].eq("gate-vs-mono") & df["metric"].eq("delta_uniform")]
    xo = crossover_table(deltas)
    path = _figure(deltas, xo, fig_dir / "scaling_crossover.png")
    verdict = table1_verdict(uni, worst)
    fmt = lambda t: t.round(4)
    sections = [_headline(verdict, xo, path)]
    sections += [Section(
        "Gate vs monolith: crossover in r (issue 13)",
        text=("Gate = SPD gate over frozen experts, graded as a proper likelihood (divided by Z "
              "estimated on fresh draws from q). Monolith trained on the uniform mixture at a "
              "target non-embedding ratio r under each matching convention (compute: equal "
              "training FLOPs; tokens: the experts' combined training tokens). delta = gate - "
              "monolith NLL per token; intervals are seed-paired 95% t intervals; a side 'wins' "
              "only when its interval excludes 0. Fit: delta = a + b log r + c log B by least "
              "squares over seeds, r* where the fit crosses 0, bootstrap interval over seeds "
              "within cells."),
        tables=[("Crossover r* per triple, convention and budget. lo/hi: bootstrap 95% interval "
                 "(seeds resampled within cells; optimistic, since a seed's gate and experts are "
                 "shared by all its cells); *_seeds: r* from each seed's own fit with a 95% t "
                 "interval over seeds (carries the seed effect: the interval to quote; NaN unless "
                 "every seed crosses, seeds_crossing); crossing_share = fraction of bootstrap fits "
                 "with an upward crossing; *_x: the fit with the log r x log B interaction",
                 fmt(xo)),
                ("Verdict on the paper's Table 1 claim (gate better on every mixture) at the r "
                 "nearest 1: uniform mixture and worst vertex, seed-paired 95% t intervals",
                 verdict),
                ("gate - monolith, uniform mixture, per cell (mean, 95% t interval over seeds; "
                 "seeds_boot_*: seeds whose paired window bootstrap excludes 0 for that side)",
                 fmt(uni)),
                ("gate - monolith, worst vertex, per cell", fmt(worst)),
                ("constant gate 1/p - monolith, uniform mixture, per cell", fmt(const_mono))],
        figures=[("gate - monolith vs r (mean and 95% t interval over seeds, the tables' rule; "
                  "dotted: fitted r*)", path)])]
    base = ["case", "expert_d", "budget"]
    g_const = seed_intervals(df, "gate-vs-const", "delta_uniform", b="constant gate")
    g_bayes = seed_intervals(df, "gate-vs-bayes_router", "delta_uniform", b="Bayes router")
    sections.append(Section(
        "Value added by SPD training: gate vs the constant gate and the Bayes-posterior router",
        text=("The Bayes-posterior causal router with a uniform prior equals the constant gate 1/p "
              "sequence by sequence (its product of posteriors telescopes to (1/p) sum_k E_k(x)); "
              "both are computed independently and agree to rounding."),
        tables=[("gate - constant gate, uniform mixture (95% t interval over seeds)", fmt(g_const)),
                ("gate - Bayes router, uniform mixture", fmt(g_bayes))]))
    z = df[df["metric"].str.startswith("Z_")]
    zt = z.pivot_table(index=base + ["seed"], columns="metric", values="value").reset_index()
    cal = z_calibration(zt)
    u = df[df["metric"].eq("nll_per_token") & df["method"].isin(["gate", "gate_spd"])]
    cost = u.pivot_table(index=base + ["seed", "lam"], columns="method", values="value").dropna()
    if {"gate", "gate_spd"} <= set(cost) and len(cost):       # gate_spd: the uniform mixture
        d = (cost["gate"] - cost["gate_spd"]).to_numpy()
        cal["text"] += (f" Cost of the restoration (restored minus SPD's gate, each divided by its "
                        f"own fresh Z, uniform mixture, NLL/token): mean {d.mean():+.4f}, range "
                        f"{d.min():+.4f} to {d.max():+.4f} over {d.size} gates.")
    sections.append(Section(
        "Normaliser Z of the trained gates on fresh draws",
        text=("G1 asks for Z = 1. SPD's last iterate meets it only up to its dual dynamics, so Z = 1 "
              "is restored on the gate's own draws from q (Gauss-Newton on the control-variate "
              "estimate; Z_restore_z_before/_z_after on those draws) and then checked on FRESH draws "
              "never seen by SPD or the restoration. Z_fresh (and Z_fresh_spd, SPD's gate before "
              "the restoration, on the same draws): the control-variate estimate of Z with its 95% "
              "normal interval (_lo, _hi) and standard error (_se); _plain: the plain mean of "
              "pi_g/q. Z_pool: the plain mean on SPD's own proposal pool; Z_hat_ema: SPD's running "
              "estimate. " + cal["text"]),
        tables=[("Z per gate: SPD's last iterate, the restoration, the restored gate on fresh draws",
                 fmt(zt[[c for c in base + ["seed"] + Z_COLUMNS if c in zt]]))]))
    split = df[df["metric"].str.startswith("split_") & df["r_target"].eq(1.0)]
    if len(split):
        st = split.groupby(["case", "convention", "budget", "lam", "metric"])["value"].agg(
            ["mean", "sem", "count"]).reset_index()
        sections.append(Section(
            "Routing-cost split of gate - monolith per domain (r = 1)",
            text=("On domain k's windows: gate - monolith = routing_proper (gate - constant gate) + "
                  "domain_prior (constant gate - expert k; at most log p / (T - 1) per token, the "
                  "cost of not knowing the domain, which the monolith pays too) + expert_deficit "
                  "(expert k - monolith). Mean ± s.e. over seeds."),
            tables=[("split per domain (lam = the vertex)", fmt(st))]))
    return sections
