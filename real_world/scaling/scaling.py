"""The decisive gate-vs-monolith experiment: the plug-in (its cell and jobs: cell.py beside it).

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
from scipy.stats import chi2, norm

from modgen_bench.launch import LaunchSpec, launch_into
from modgen_bench.reporting import Headline, Section, legend_outside, save_figure
from modgen_bench.reporting.figures import Figure
from modgen_bench.stats import every_mixture, paired_t_interval, two_level_interval

from .board import board_sections, gate_vs_free
from .cell import SCALES, ScalingConfig, cell_jobs, crossover_table

Config = ScalingConfig

CELL = ["case", "resample", "convention", "expert_d", "budget", "r_target"]

#: The paper's Table 1 ratio: 3 experts of 2 layers at d = 256 against a 3-layer monolith at
#: d = 184 (PAPER.md section 5): 3 x 184^2 / (3 x 2 x 256^2) = 0.26 in non-embedding parameters
#: (the rows' ``paper_ratio``, when present, wins).
PAPER_RATIO = 0.26


def _paper_ratio(df) -> float:
    if "paper_ratio" in df and df["paper_ratio"].notna().any():
        return float(pd.to_numeric(df["paper_ratio"]).dropna().iloc[0])
    return PAPER_RATIO


def _nearest(r_target, ratio):
    """Distance in log r of each target ratio to ``ratio``."""
    return (np.log(r_target.astype(float)) - np.log(ratio)).abs()


def run(ctx) -> None:
    ScalingConfig.from_dict(ctx.config)  # errors before any job starts
    spec = getattr(ctx, "launch", None) or LaunchSpec()
    jobs = cell_jobs(ctx.config, ctx.device, progress=spec.launcher == "serial")
    launch_into(ctx, jobs, spec)


def _num(df, cols):
    df = df.copy()
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def cell_intervals(
    df: pd.DataFrame, method: str, metric: str, by=(), a: str = "gate", b: str = "monolith"
) -> pd.DataFrame:
    """Per cell (and per ``by`` column, e.g. lam): the 95% interval of ``metric`` (a paired
    difference, one row per seed) over seeds AND test windows (`stats.two_level_interval`, the
    window s.e. from the ``<metric>_se`` rows: the seeds share one set of test windows). Seeds
    and data resamples stay apart (``resample`` is part of the cell). ``iv``: the Interval."""
    d = df[df["method"].eq(method) & df["metric"].eq(metric)]
    se = df[df["method"].eq(method) & df["metric"].eq(f"{metric}_se")]
    keys = [c for c in CELL + list(by) if c in d and d[c].notna().any()]
    if len(se):
        d = d.merge(
            se[keys + ["seed", "value"]].rename(columns={"value": "se"}),
            on=keys + ["seed"],
            how="left",
        )
    out = []
    for key, g in d.groupby(keys, dropna=False):
        has_se = "se" in g and g["se"].notna().all()
        iv = (
            two_level_interval(g["value"].to_numpy(), g["se"].to_numpy())
            if has_se
            else paired_t_interval(g["value"].to_numpy())
        )
        out.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "r": g["r"].mean() if "r" in g else np.nan,
                "mean": iv.mean,
                "se": iv.se,
                "lo": iv.lo,
                "hi": iv.hi,
                "n": iv.n,
                "method": iv.method,
                "verdict": iv.verdict.replace("a wins", f"{a} better").replace(
                    "b wins", f"{b} better"
                ),
                "iv": iv,
            }
        )
    return pd.DataFrame(out)


def _fmt(iv) -> str:
    """'mean [lo, hi]'; with one seed there is no interval, and it says so."""
    if not (np.isfinite(iv.lo) and np.isfinite(iv.hi)):
        return f"{iv.mean:+.4f} (one seed: no interval)"
    return f"{iv.mean:+.4f} [{iv.lo:+.4f}, {iv.hi:+.4f}]"


def mixture_verdicts(df: pd.DataFrame, method: str = "gate-vs-mono") -> pd.DataFrame:
    """The paper's Table 1 claim per cell: a - b < 0 on every vertex and the uniform mixture,
    Holm-corrected over those p + 1 mixtures (`stats.every_mixture`), with intervals over seeds
    and windows; SPD's own endpoint (worst-case excess over each domain's expert) beside it."""
    vert = cell_intervals(df, method, "delta_vertex", by=["lam"])
    uni = cell_intervals(df, method, "delta_uniform")
    exc = cell_intervals(df, method, "delta_worst_excess")
    keys = [c for c in CELL if c in uni]
    out = []
    for _, u in uni.iterrows():
        m = np.ones(len(vert), bool)
        for k in keys:
            m &= (vert[k] == u[k]).to_numpy()
        v = vert[m].sort_values("lam")
        fam = every_mixture(list(v["lam"]) + ["uniform"], list(v["iv"]) + [u["iv"]])
        worst = v.loc[v["mean"].idxmax()] if len(v) else None
        e = exc
        for k in keys:
            e = e[e[k] == u[k]]
        out.append(
            {
                **{k: u[k] for k in keys},
                "r": round(float(u["r"]), 3),
                "uniform": _fmt(u["iv"]),
                "least favourable vertex": (
                    f"{worst['lam']}: {_fmt(worst['iv'])}" if worst is not None else ""
                ),
                "max Holm p": max(fam.p_holm),
                "verdict": fam.verdict,
                "n seeds": u["n"],
                "worst-case excess": _fmt(e["iv"].iloc[0]) if len(e) else "",
                "excess verdict": e["verdict"].iloc[0] if len(e) else "",
            }
        )
    return pd.DataFrame(out)


def _paper_cells(verdict: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Per (case, resample, convention, expert_d, budget), the cell at the swept r nearest the
    paper's ratio (in log r)."""
    keys = [c for c in CELL[:-1] if c in verdict]
    idx = verdict.groupby(keys)["r_target"].apply(lambda t: _nearest(t, ratio).idxmin())
    return verdict.loc[idx.to_numpy()]


def _flops_line(df, conv, ratio) -> str:
    """Both sides' FLOPs at the paper's ratio, medians over cells."""
    g = df[df["method"].eq("gate") & df["metric"].eq("flops_total")]["value"]
    tr = df[df["method"].eq("gate") & df["metric"].eq("flops_experts_train")]["value"]
    m = df[df["method"].eq("mono") & df["metric"].eq("flops_train") & df["convention"].eq(conv)]
    if not len(g) or not len(m):
        return ""
    m = m[_nearest(m["r_target"], ratio) == _nearest(m["r_target"], ratio).min()]
    return (
        f" FLOPs (median over cells): gate side {g.median():.3g} (experts' training "
        f"{tr.median() / g.median():.0%} of it; the rest scoring, sampling, SPD, the Z "
        f"restoration and routing), monolith {m['value'].median():.3g} "
        f"({m['value'].median() / g.median():.2f}x)."
    )


def _cross_line(xo, conv) -> str:
    x = xo[xo["convention"] == conv]
    stated = x[x["status"] == "crossing"]
    parts = [
        f"{c}, budget {int(b)}: vanishes at r* = {r:.2f} [{lo:.2f}, {hi:.2f}]"
        for c, b, r, lo, hi in zip(
            stated["case"],
            stated["budget"],
            stated["r_star"],
            stated["lo"],
            stated["hi"],
            strict=True,
        )
    ]
    counts = x["status"].value_counts()
    rest = ", ".join(f"{k} in {v}" for k, v in counts.items() if k != "crossing")
    return (
        "Crossover: "
        + ("; ".join(parts) if parts else "no r* stated")
        + (f" ({rest} of {len(x)} fits)" if rest else "")
        + "."
    )


def _lr_grid(df) -> str:
    lrs = df[df["method"].eq("mono") & df["metric"].eq("val_nll")]
    return (
        " from {" + ", ".join(f"{v:g}" for v in sorted(lrs["lr"].unique())) + "}"
        if "lr" in lrs and len(lrs)
        else ""
    )


def _headline(verdict, xo, df, path, scale: str) -> Headline:
    """The paper's question at the paper's ratio first, then the crossover, both sides' FLOPs."""
    ratio = _paper_ratio(df)
    paper = _paper_cells(verdict, ratio)
    label = SCALES.get(scale, "Pilot scale")
    lines, counts = [], {}
    for conv, g in paper.groupby("convention"):
        n = g["verdict"].value_counts()
        for k, v in n.items():
            counts[f"{conv}: {k}"] = int(v)
        ex = g["excess verdict"].value_counts()
        lines.append(
            f"- **{conv}-matched, r = {ratio:g} (achieved: {g['r'].median():.2f})**: "
            + ", ".join(f"{k} in {v}" for k, v in n.items())
            + f" of {len(g)} cells "
            f"(uniform mixture: {'; '.join(g['uniform'])}); SPD's endpoint (worst-case excess, "
            "gate - monolith): "
            + ", ".join(f"{k} in {v}" for k, v in ex.items())
            + ". "
            + _cross_line(xo, conv)
            + _flops_line(df, conv, ratio)
        )
    text = (
        f"**{label}.** Does the gate beat a monolith at the paper's ratio, r = {ratio:g} "
        "(its Table 1 matched total parameters; at its shapes the non-embedding ratio is 0.26, "
        "PAPER.md section 5), on every mixture? 'Supported' only when gate - monolith is < 0 "
        "on every vertex and the uniform mixture at Holm-adjusted p < 0.05 (intervals over "
        "seeds and test windows); 'contradicted' only when some mixture is > 0 at that level. "
        "Then where the win vanishes: r* only where the cells' own intervals change sign and "
        "the fit agrees with them (Fieller interval over seeds). Monoliths warm up for a "
        "fixed fraction of their steps; their learning rate is chosen per cell on the "
        f"validation windows{_lr_grid(df)}.\n\n" + "\n".join(lines)
    )
    tone = (
        "bad"
        if paper["verdict"].eq("contradicted").any()
        else "ok"
        if paper["verdict"].eq("supported").all()
        else "neutral"
    )
    fig = Figure(
        "gate - monolith vs the non-embedding ratio r, per triple and convention (95% "
        "intervals over seeds and windows; dotted: checked r*)",
        Path(path),
        alt="gate minus monolith NLL per token against r for each triple, budget and "
        "matching convention, with the checked crossover",
    )
    return Headline(
        f"{label}: gate vs monolith at the paper's ratio r = {ratio:g}, then the crossover",
        text,
        counts=counts,
        figure=fig,
        tone=tone,
    )


#: the free baselines beside the gate: their rows of gate-vs-mono's kind, and their names
FREE = {
    "const-vs-mono": "the constant gate 1/p",
    "gate_fixed_best-vs-mono": "the best fixed-weight gate",
}


def _free_baselines(df, leaderboards) -> str:
    """The headline's honest part: the free baselines (no network trained) against the same
    monoliths under the same rule at the paper's ratio, beside the gate's count, and the gate
    against the best free baseline on each leaderboard's worst vertex."""
    ratio = _paper_ratio(df)
    won = {
        m: _paper_cells(mixture_verdicts(df, m), ratio)
        for m in ["gate-vs-mono", *FREE]
        if df["method"].eq(m).any()
    }
    parts, same = [], set()
    for conv, g in won["gate-vs-mono"].groupby("convention"):
        n = {
            m: int(v[v["convention"].eq(conv)]["verdict"].eq("supported").sum())
            for m, v in won.items()
        }
        parts.append(
            f"{conv}-matched: SPD gate {n['gate-vs-mono']} of {len(g)}, "
            + ", ".join(f"{FREE[m]} {n[m]}" for m in FREE if m in n)
        )
        same |= {
            FREE[m] for m in FREE if m in n and n["gate-vs-mono"] and n[m] >= n["gate-vs-mono"]
        }
    lines = [
        f"- **Free baselines** (no network trained; the same monoliths, rule and cells at "
        f"r = {ratio:g}), cells 'supported': "
        + "; ".join(parts)
        + (
            f". {' and '.join(sorted(same))} earn{'s' if len(same) == 1 else ''} it as "
            "often as the SPD gate under some convention, so there the verdict is no "
            "evidence for what SPD's training adds."
            if same
            else "."
        )
    ]
    gaps = []
    for key, lb in leaderboards.items():
        gap = gate_vs_free(lb)
        if gap is not None:
            gaps.append((f"{key[0]} (d = {int(key[1])}, budget {int(key[2])})", gap))
    if gaps:
        better = sum(bool(g.hi < 0) for _, g in gaps)
        as_well = sum(bool(g.hi >= 0) for _, g in gaps)  # NaN (one seed): neither
        lines.append(
            "- **SPD gate - best free baseline, worst vertex** (leaderboards below; paired over "
            "seeds): "
            + "; ".join(f"{k}: {_fmt(g)} ({g.baseline})" for k, g in gaps)
            + f". The gate is shown better in {better} of {len(gaps)}; the free baseline does as "
            f"well within the interval (it holds 0, or the gate is worse) in {as_well}"
            + (
                f"; no interval (one seed) in {len(gaps) - better - as_well}"
                if better + as_well < len(gaps)
                else ""
            )
            + "."
        )
    return "\n" + "\n".join(lines) if lines else ""


def _figure(uni, xo, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    deltas = uni
    cases, convs = sorted(deltas["case"].unique()), sorted(deltas["convention"].unique())
    fig, axes = plt.subplots(
        len(cases), len(convs), figsize=(5.2 * len(convs), 3.4 * len(cases)), squeeze=False
    )
    panels = [(c, v) for c in cases for v in convs]
    for ax, (case, conv) in zip(axes.ravel(), panels, strict=True):
        g = deltas[(deltas["case"] == case) & (deltas["convention"] == conv)]
        for j, (B, gb) in enumerate(sorted(g.groupby("budget"))):
            m = (
                gb.groupby("r_target")
                .agg(r=("r", "mean"), mean=("mean", "mean"), lo=("lo", "mean"), hi=("hi", "mean"))
                .sort_values("r")
            )
            yerr = np.stack([m["mean"] - m["lo"], m["hi"] - m["mean"]]).clip(0)
            ax.errorbar(
                m["r"],
                m["mean"],
                yerr=np.nan_to_num(yerr),
                marker="o",
                capsize=2,
                color=f"C{j}",
                label=f"budget {int(B)} steps",
            )
            x = xo[(xo["case"] == case) & (xo["convention"] == conv) & (xo["budget"] == B)]
            if len(x) and "r_star" in x and np.isfinite(x["r_star"].iloc[0]):
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
    alt = (
        "gate minus monolith NLL per token against the non-embedding ratio r, per triple and "
        "matching convention, one line per budget, with checked crossovers r* (nan: none "
        "stated): "
        + "; ".join(
            f"{c} {v} budget {int(b)}: r* {r:.3g}"
            for c, v, b, r in zip(
                xo.get("case", []),
                xo.get("convention", []),
                xo.get("budget", []),
                xo.get("r_star", []),
                strict=True,
            )
        )
    )
    return save_figure(fig, path, alt=alt, dpi=110)  # PNG + SVG, atomically


Z_COLUMNS = [
    "Z_fresh_spd",
    "z_score_spd",
    "1 in interval_spd",
    "Z_restore_z_before",
    "Z_restore_steps",
    "Z_restore_converged",
    "Z_fresh",
    "Z_fresh_lo",
    "Z_fresh_hi",
    "z_score",
    "1 in interval",
    "Z_restore_se",
    "z_score_combined",
    "Z_fresh_plain",
    "Z_pool",
    "Z_hat_ema",
]


def z_calibration(zt: pd.DataFrame, level: float = 0.95) -> dict:
    """Is every gate's Z consistent with 1? Per gate: 1 inside its 95% interval (about 5% of
    exactly normalised gates miss by chance). For the family of n gates: a Bonferroni test (every
    |Z - 1| / se <= z_{1 - 0.025/n}: a 95% simultaneous statement) and a chi-square test of
    sum ((Z - 1) / se)^2 against chi2(n). Adds ``1 in interval`` and ``z_score`` columns."""
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
        zt["z_score_combined"] = (zt["Z_fresh"] - 1) / np.hypot(
            zt["Z_fresh_se"], zt["Z_restore_se"]
        )
        zc = np.abs(zt["z_score_combined"].fillna(0.0).to_numpy())
        combined = (
            f" With the restoration's own s.e. added (Z - 1 ~ N(0, se_fresh^2 + "
            "se_restore^2) at a perfect restoration): "
            f"{int((zc <= norm.ppf(0.5 + level / 2)).sum())} "
            f"of {n} within 95%, max |z| {zc.max():.2f}."
        )
    text = (
        f"{inside} of {n} restored gates have 1 inside their 95% interval (about "
        f"{(1 - level) * n:.1f} misses expected by chance at Z = 1 exactly); largest |Z - 1| / se "
        f"= {max_z:.2f} against the Bonferroni bound {crit:.2f} for {n} gates "
        f"({'every' if max_z <= crit else 'some'} gate {'' if max_z <= crit else 'NOT '}"
        f"consistent with Z = 1, simultaneous 95%); chi-square test of sum z^2 on {n} d.o.f.: "
        f"p = {p_chi2:.3g}."
        + (f" SPD's gates before the restoration: {spd} of {n}." if spd is not None else "")
        + combined
    )
    return {
        "text": text,
        "n": n,
        "inside": inside,
        "inside_spd": spd,
        "max_abs_z": max_z,
        "bonferroni": crit,
        "p_chi2": p_chi2,
    }


def _fmt_table(t):
    return t.drop(columns=["iv"], errors="ignore").round(4)


def _scale_name(df) -> str:
    """The run's scale (the first recorded ``scale``), "pilot" when the rows record none."""
    if "scale" in df and df["scale"].notna().any():
        return str(df["scale"].dropna().iloc[0])
    return "pilot"


def _flops_table(df):
    """The monolith's training FLOPs and their ratio to the gate side's total, one row a cell."""
    mono = df[df["method"].eq("mono") & df["metric"].isin(["flops_train", "flops_ratio_total"])]
    if not len(mono):
        return mono
    return mono.pivot_table(
        index=[c for c in CELL if c in mono], columns="metric", values="value"
    ).reset_index()


def _lr_table(df):
    """The monolith's validation NLL per token at each grid learning rate, per cell and seed."""
    lr = df[df["method"].eq("mono") & df["metric"].eq("val_nll")]
    if not len(lr):
        return lr
    return lr.pivot_table(
        index=[c for c in CELL if c in lr] + ["seed"], columns="lr", values="value"
    ).reset_index()


_COMPARISON_TEXT = (
    "Gate = SPD gate over frozen experts, graded as a proper likelihood (divided by Z "
    "estimated on fresh draws from q). Monolith trained on the uniform mixture at a "
    "target non-embedding ratio r under each matching convention (compute: equal "
    "training FLOPs; compute_total: the gate side's every FLOP; tokens: the experts' "
    "combined training tokens), warm-up a fixed fraction of its steps, learning rate "
    "chosen per cell on the validation windows from the preset's grid (model "
    "selection, DomainBed style). delta = gate - monolith NLL per token. Intervals: "
    "95% over seeds and test windows (the seeds share the test windows, whose error "
    "is added to the seeds' spread). The paper's claim is tested on every vertex and "
    "the uniform mixture (a difference of NLLs is linear in lam: negative at every "
    "vertex means negative on every mixture), Holm-corrected. SPD's own endpoint: "
    "max_k [NLL_k - NLL_k(expert k)], gate minus monolith. Crossover: the fit "
    "delta = a + b log r + c log B is a summary of the cells; r* is stated only when "
    "the cells change sign, the fit agrees with every decided cell, passes a "
    "lack-of-fit test and puts r* inside the cells' bracket."
)


def _comparison_section(df, verdict, xo, uni, path) -> Section:
    """The gate-vs-monolith section: verdicts, crossover, intervals, FLOPs and the lr grid."""
    fmt = _fmt_table
    const_mono = cell_intervals(df, "const-vs-mono", "delta_uniform", a="constant gate")
    flops = _flops_table(df)
    lr = _lr_table(df)
    return Section(
        "Gate vs monolith: every mixture, SPD's endpoint, and the crossover in r",
        text=_COMPARISON_TEXT,
        tables=[
            (
                "Verdict per cell on the paper's claim (gate better on every mixture; Holm "
                "over "
                "the vertices and the uniform mixture) and SPD's endpoint (worst-case excess)",
                fmt(verdict),
            ),
            (
                "Crossover per triple, convention and budget, checked against the cells "
                "(status; bracket from the cells; r* with its Fieller interval over seeds only "
                "when stated; fit_r_star: the fit's own value, for the record)",
                fmt(xo),
            ),
            ("gate - monolith, uniform mixture, per cell", fmt(uni)),
            ("constant gate 1/p - monolith, uniform mixture, per cell", fmt(const_mono)),
            ("FLOPs: the monolith's training and its ratio to the gate side's total", fmt(flops)),
            (
                "The monolith's learning-rate grid: validation NLL per token (the lowest is kept)",
                lr,
            ),
        ],
        figures=[
            (
                "gate - monolith vs r (mean and 95% interval over seeds and windows; dotted: "
                "checked r*)",
                path,
            )
        ],
    )


def _comparison(df: pd.DataFrame, fig_dir: Path) -> list:
    """The headline and the gate-vs-monolith section: every mixture, SPD's endpoint, crossover."""
    uni = cell_intervals(df, "gate-vs-mono", "delta_uniform")
    deltas = df[df["method"].eq("gate-vs-mono") & df["metric"].eq("delta_uniform")]
    xo = crossover_table(deltas, uni)
    path = _figure(uni, xo, fig_dir / "scaling_crossover.png")
    verdict = mixture_verdicts(df)
    scale = _scale_name(df)
    comparison = _comparison_section(df, verdict, xo, uni, path)
    boards = board_sections(df, fig_dir)
    head = _headline(verdict, xo, df, path, scale)
    head.text += _free_baselines(df, boards.leaderboards)
    return [head, comparison] + boards.sections


#: Columns the rows may carry as text that the report compares as numbers.
_NUMERIC = [
    "budget",
    "r_target",
    "r",
    "compute_ratio",
    "token_ratio",
    "expert_d",
    "seed",
    "mono_d",
    "mono_steps",
    "resample",
    "mono_lr",
    "lr",
]

#: The cell columns the gate-only tables are indexed by (no monolith, so no convention or r).
_GATE_CELL = ["case", "expert_d", "budget"]


def _value_added_section(df) -> Section:
    """The gate against the constant gate and the Bayes router: what SPD's training adds."""
    fmt = _fmt_table
    g_const = cell_intervals(df, "gate-vs-const", "delta_uniform", b="constant gate")
    g_exc = cell_intervals(df, "gate-vs-const", "delta_worst_excess", b="constant gate")
    g_bayes = cell_intervals(df, "gate-vs-bayes_router", "delta_uniform", b="Bayes router")
    return Section(
        "Value added by SPD training: gate vs the constant gate and the Bayes-posterior router",
        text=(
            "The Bayes-posterior causal router with a uniform prior equals the constant "
            "gate 1/p "
            "sequence by sequence (its product of posteriors telescopes to (1/p) sum_k "
            "E_k(x)); "
            "both are computed independently and agree to rounding."
        ),
        tables=[
            (
                "gate - constant gate, uniform mixture (95% interval over seeds and windows)",
                fmt(g_const),
            ),
            (
                "gate - constant gate on SPD's own endpoint, the worst-case excess over each "
                "domain's expert",
                fmt(g_exc),
            ),
            ("gate - Bayes router, uniform mixture", fmt(g_bayes)),
        ],
    )


def _restoration_cost(df) -> str:
    """A sentence on the restored gate's NLL minus SPD's gate's, "" when either is missing."""
    u = df[df["metric"].eq("nll_per_token") & df["method"].isin(["gate", "gate_spd"])]
    cost = u.pivot_table(
        index=_GATE_CELL + ["seed", "lam"], columns="method", values="value"
    ).dropna()
    if not ({"gate", "gate_spd"} <= set(cost) and len(cost)):  # gate_spd: the uniform mixture
        return ""
    d = (cost["gate"] - cost["gate_spd"]).to_numpy()
    return (
        f" Cost of the restoration (restored minus SPD's gate, each divided by its "
        f"own fresh Z, uniform mixture, NLL/token): mean {d.mean():+.4f}, range "
        f"{d.min():+.4f} to {d.max():+.4f} over {d.size} gates."
    )


_Z_TEXT = (
    "G1 asks for Z = 1. SPD's last iterate meets it only up to its dual dynamics, "
    "so Z = 1 "
    "is restored on the gate's own draws from q (Gauss-Newton on the control-variate "
    "estimate; Z_restore_z_before/_z_after on those draws) and then checked on "
    "FRESH draws "
    "never seen by SPD or the restoration. Z_fresh (and Z_fresh_spd, SPD's gate before "
    "the restoration, on the same draws): the control-variate estimate of Z with "
    "its 95% "
    "normal interval (_lo, _hi) and standard error (_se); _plain: the plain mean of "
    "pi_g/q. Z_pool: the plain mean on SPD's own proposal pool; Z_hat_ema: SPD's "
    "running "
    "estimate. "
)


def _z_section(df) -> Section:
    """The trained gates' normaliser Z on fresh draws, its calibration and the restoration."""
    z = df[df["metric"].str.startswith("Z_")]
    zt = z.pivot_table(index=_GATE_CELL + ["seed"], columns="metric", values="value").reset_index()
    cal = z_calibration(zt)
    cal["text"] += _restoration_cost(df)
    return Section(
        "Normaliser Z of the trained gates on fresh draws",
        text=_Z_TEXT + cal["text"],
        tables=[
            (
                "Z per gate: SPD's last iterate, the restoration, the restored gate on fresh draws",
                _fmt_table(zt[[c for c in _GATE_CELL + ["seed"] + Z_COLUMNS if c in zt]]),
            )
        ],
    )


def _split_section(df) -> list:
    """The routing-cost split of gate - monolith per domain at r = 1; [] without split rows."""
    split = df[df["metric"].str.startswith("split_") & df["r_target"].eq(1.0)]
    if not len(split):
        return []
    st = (
        split.groupby(["case", "convention", "budget", "lam", "metric"])["value"]
        .agg(["mean", "sem", "count"])
        .reset_index()
    )
    return [
        Section(
            "Routing-cost split of gate - monolith per domain (r = 1)",
            text=(
                "On domain k's windows: gate - monolith = routing_proper (gate - constant "
                "gate) + "
                "domain_prior (constant gate - expert k; at most log p / (T - 1) per token, "
                "the "
                "cost of not knowing the domain, which the monolith pays too) + expert_deficit "
                "(expert k - monolith). Mean ± s.e. over seeds."
            ),
            tables=[("split per domain (lam = the vertex)", _fmt_table(st))],
        )
    ]


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    """The suite's report: the comparison, value added by SPD, Z, and the routing-cost split."""
    fig_dir = Path(fig_dir)
    df = _num(df, _NUMERIC)
    sections = _comparison(df, fig_dir)
    sections.append(_value_added_section(df))
    sections.append(_z_section(df))
    return sections + _split_section(df)
