"""Convergence study: stochastic and exact-gradient algorithms graded against V* (PAPER.md section
4).

For random (Dirichlet) and structured problems (disjoint domains, heavy overlap, experts leaking
mass off X0 with the ``union`` support) every method runs for the same budget; every logged step's
gate is graded exactly (`modgen_bench.algorithms.harness.grade`: worst-case KL after normalising
by the exact Z, minus V* from the exact core). Rows (tidy, one per measurement):

- metric ``suboptimality`` / ``Z`` per logged step (extra columns ``step``, ``samples``);
- SPD trajectories ``lam_k``, ``mu``, ``Z_hat`` per logged step (the stability claim);
- ``final_suboptimality``, ``final_Z``, ``lam_error`` (L1 distance to lam*) per run;
- ``value`` (V*) per case, method ``exact``; ``final_suboptimality`` of the per-domain sweep.

Method labels: ``alg1`` (exact gradients, gain KL), ``alg1-nll`` / ``alg1-excess`` (the exact
fixed points of the nll / excess signals), ``spd-<signal>``, ``spd-kl-paperZ`` (Z estimated on
the domain batch as in the paper), ``spd-kl-linear`` (linear-softmax gate), and the peer rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from modgen_bench import instances  # noqa: E402
from modgen_bench.algorithms.harness import run_method  # noqa: E402
from modgen_bench.errors import UserError
from modgen_bench.exact import solve  # noqa: E402
from modgen_bench.provenance import stable_seed  # noqa: E402
from modgen_bench.reporting import (  # noqa: E402
    Headline,
    Section,
    format_mean_se,
    legend_outside,
    mean_se_table,
    save_figure,
)
from modgen_bench.reporting.prose import prose  # noqa: E402

#: label -> (registered method, lam signal (None: the rule's own), extra config)
METHODS = {
    "alg1": ("alg1", "kl", {}),
    "alg1-nll": ("alg1", "nll", {}),
    "alg1-excess": ("alg1", "excess", {}),
    "spd-kl": ("spd", "kl", {}),
    "spd-excess": ("spd", "excess", {}),
    "spd-nll": ("spd", "nll", {}),
    "spd-kl-paperZ": ("spd", "kl", {"z_estimator": "paper"}),
    "spd-kl-linear": ("spd", "kl", {"gate": "linear"}),
    "doremi": ("doremi", None, {}),
    "groupdro": ("groupdro", None, {}),
    "afl": ("afl", None, {}),
}

#: structured family -> (instance kwargs given N, support convention)
STRUCTURED = {
    "disjoint": (lambda N: {}, "domains"),
    "overlap": (lambda N: {"overlap": 0.9}, "domains"),
    "leaking": (lambda N: {"leak": 0.2, "support": N // 2}, "union"),  # half the outcomes off X0
    "face": (lambda N: {}, "domains"),
    "near_deterministic": (lambda N: {}, "domains"),
}

#: this suite's folder (the report's prose templates sit beside this file)
HERE = Path(__file__).resolve().parent
THRESHOLDS = (1e-2, 1e-3)
FLOOR = 1e-7  # plotting floor for log axes (suboptimality can be 0 up to rounding)


def _cases(cfg):
    seed, p, N = int(cfg.get("seed", 0)), int(cfg["p"]), int(cfg["N"])
    for i in range(int(cfg["n_random"])):
        problem = instances.make("dirichlet", stable_seed(seed, "instance", i), p=p, N=N)
        yield f"random-{i}", "random", problem, "domains"
    for fam in cfg.get("structured", []):
        kw, support = STRUCTURED[fam]
        problem = instances.make(fam, stable_seed(seed, "instance", fam), p=p, N=N, **kw(N))
        yield fam, fam, problem, support


def _run_one(
    ctx, case, group, problem, support, label, sol, steps, log_every, tag=None, **extra_cfg
):
    """Run one method label, grade it, add its rows under ``tag`` (default: the label)."""
    method, signal, kw = METHODS[label]
    kw = {**kw, **extra_cfg}
    gate = kw.pop("gate", "table")
    r = run_method(
        problem,
        method,
        signal,
        gate=gate,
        support=support,
        steps=steps,
        seed=ctx.seed,
        device=ctx.device,
        track=True,
        log_every=log_every,
        value=sol.value,
        **kw,
    )
    per_step = problem.p * kw.get("per_domain", 64) if method != "alg1" else 0
    common = dict(group=group, support=support, signal=r.lam_signal)
    h = r.history
    traj = ["suboptimality", "Z"] + (
        [c for c in h.columns if c.startswith("lam_")] + ["mu", "Z_hat"] if method != "alg1" else []
    )
    for row in h.to_dict("records"):
        for m in traj:
            ctx.add(
                case,
                tag or label,
                m,
                row[m],
                step=int(row["step"]),
                samples=int(row["step"]) * per_step,
                **common,
            )
    done = dict(step=steps, samples=steps * per_step, **common)
    ctx.add(case, tag or label, "final_suboptimality", r.grade["suboptimality"], **done)
    ctx.add(case, tag or label, "final_Z", r.grade["Z"], **done)
    ctx.add(case, tag or label, "lam_error", float(np.abs(r.lam - sol.lam).sum()), **done)


def run(ctx) -> None:
    cfg = ctx.config
    steps, log_every = int(cfg["steps"]), int(cfg["log_every"])
    for label in [*cfg["methods"], *cfg.get("structured_methods", [])]:
        if label not in METHODS:
            raise UserError(f"unknown method label '{label}'; choose from {', '.join(METHODS)}")
    sweep_left = int(cfg.get("sweep_cases", 0))
    for case, group, problem, support in _cases(cfg):
        sol = solve(problem, support=support)
        if not sol.optimal:
            raise ValueError(f"case {case}: {sol.reason}")
        ctx.add(
            case,
            "exact",
            "value",
            sol.value,
            group=group,
            support=support,
            duality_gap=sol.duality_gap,
        )
        for k, v in enumerate(sol.lam):
            ctx.add(case, "exact", f"lam_star_{k}", v, group=group, support=support)
        labels = (
            cfg["methods"] if group == "random" else cfg.get("structured_methods", cfg["methods"])
        )
        for label in labels:
            _run_one(ctx, case, group, problem, support, label, sol, steps, log_every)
        if group == "random" and sweep_left > 0:
            sweep_left -= 1
            for n in cfg.get("per_domain_sweep", []):
                _run_one(
                    ctx,
                    case,
                    group,
                    problem,
                    support,
                    "spd-kl",
                    sol,
                    steps,
                    steps,
                    tag=f"spd-kl@{int(n)}",
                    per_domain=int(n),
                )


# ---------------------------------------------------------------- report (rows alone)


def _final(df):
    return df[df["metric"].eq("final_suboptimality")]


def _steps_to(traj: pd.DataFrame, thr: float) -> float:
    """First logged step after which the suboptimality stays <= thr (NaN if never)."""
    traj = traj.sort_values("step")
    above = traj["value"].to_numpy() > thr
    if above[-1]:
        return np.nan
    last_above = np.flatnonzero(above)
    return float(traj["step"].iloc[last_above[-1] + 1] if len(last_above) else traj["step"].iloc[0])


def _fmt(t):
    t = t.copy()
    t["mean ± s.e."] = [
        format_mean_se(m, s, n) for m, s, n in zip(t["mean"], t["se"], t["n"], strict=True)
    ]
    return t


def steps_figure(traj: pd.DataFrame, groups: list):
    """Exact suboptimality against step, one panel per problem group, one line per method.

    One colour per method across panels (panels run different subsets of `METHODS`, so a per-panel
    colour cycle would give one method several colours) and one legend over every panel's lines."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    colour = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(METHODS)}
    shown = {}
    for ax, group in zip(axes[0], groups, strict=True):
        g = traj[traj["group"].eq(group)]
        for method in [m for m in METHODS if m in set(g["method"])]:
            s = g[g["method"].eq(method)].groupby("step")["value"].mean()
            (shown[method],) = ax.plot(
                s.index,
                np.maximum(s.values, FLOOR),
                label=method,
                color=colour[method],
                ls="-" if method.startswith(("spd", "alg1")) else "--",
            )
        ax.set_yscale("log")
        ax.axhline(1e-2, color="grey", lw=0.5)
        ax.axhline(1e-3, color="grey", lw=0.5, ls=":")
        ax.set_title(f"{group} problems", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("exact suboptimality (nats)")
    names = [m for m in METHODS if m in shown]
    axes[0][-1].legend(
        [shown[m] for m in names],
        names,
        title="method",
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    return fig


#: the report's prose, one macro per section (beside this file)
PROSE = "convergence.md.j2"


@dataclass
class _Rows:
    """What every report section reads: the run's rows, split once."""

    df: pd.DataFrame  # every row; step and samples numeric
    main: pd.DataFrame  # without the batch-size sweep ("spd-kl@16")
    fin: pd.DataFrame  # final suboptimality per run of `main`
    traj: pd.DataFrame  # suboptimality per logged step of `main`
    steps: int  # the step budget (0 without final rows)
    fig_dir: Path


def _rows(df: pd.DataFrame, fig_dir) -> _Rows:
    df = df.copy()
    for col in ("step", "samples"):
        df[col] = pd.to_numeric(df.get(col), errors="coerce")
    main = df[~df["method"].str.contains("@")]  # "spd-kl@16": the batch-size sweep
    fin = _final(main)
    traj = main[main["metric"].eq("suboptimality") & main["step"].notna()]
    return _Rows(df, main, fin, traj, int(fin["step"].max()) if len(fin) else 0, Path(fig_dir))


def _ordered(t: pd.DataFrame, by: list) -> pd.DataFrame:
    """``t`` sorted by ``by`` with the methods in `METHODS` order."""
    t = t.copy()
    t["method"] = pd.Categorical(t["method"], [m for m in METHODS if m in set(t["method"])])
    return t.sort_values(by)


def headline(r: _Rows) -> Headline | None:
    """Final exact suboptimality on the random problems: each stochastic method's mean ± s.e.,
    which means fall below 1e-2 (a threshold on the mean, not a ranking claim)."""
    fin = r.fin
    if not len(fin):
        return None
    grp = "random" if fin["group"].eq("random").any() else sorted(fin["group"].unique())[0]
    t = mean_se_table(fin[fin["group"].eq(grp)], by=("method",)).set_index("method")

    def line(m):
        return f"{m} {format_mean_se(t.loc[m, 'mean'], t.loc[m, 'se'], int(t.loc[m, 'n']))}"

    stoch = [m for m in METHODS if m in t.index and not m.startswith("alg1")]
    text = prose(
        PROSE,
        "headline",
        HERE,
        steps=r.steps,
        group=grp,
        stochastic=[line(m) for m in stoch],
        below=[m for m in stoch if t.loc[m, "mean"] < 1e-2],
        reference=line("alg1") if "alg1" in t.index else None,
    )
    return Headline(f"exact suboptimality after {r.steps} steps", text)


def final_table(r: _Rows) -> Section:
    """Final suboptimality per method and problem group; exact Z and the lam error per method."""
    t = _fmt(mean_se_table(r.fin, by=("group", "method")))
    wide = t.pivot_table(index="method", columns="group", values="mean ± s.e.", aggfunc="first")
    order = [m for m in METHODS if m in wide.index]
    wide = wide.loc[order].fillna("—").reset_index()  # "—": method not run on that group
    main = r.main
    z = _fmt(mean_se_table(main[main["metric"].eq("final_Z")], by=("method",)))
    lam_err = _fmt(mean_se_table(main[main["metric"].eq("lam_error")], by=("method",)))
    extra = z[["method", "mean ± s.e."]].merge(
        lam_err[["method", "mean ± s.e."]], on="method", suffixes=(" exact Z", " |lam - lam*|_1")
    )
    return Section(
        "suboptimality across methods and lam signals",
        prose(PROSE, "final", HERE, steps=r.steps),
        tables=[
            ("final suboptimality (nats)", wide),
            (
                "exact Z of the returned gate and L1 error of the returned lam "
                "against lam* (all cases)",
                _ordered(extra, "method"),
            ),
        ],
    )


def steps_to_threshold(r: _Rows) -> Section | None:
    """Per method and group: median steps to each of `THRESHOLDS`, and how many cases reach it."""
    rows = [
        {
            "group": group,
            "method": method,
            "case": case,
            **{f"steps to {thr:g}": _steps_to(g, thr) for thr in THRESHOLDS},
        }
        for (group, method, case), g in r.traj.groupby(["group", "method", "case"])
    ]
    if not rows:
        return None
    agg = (
        pd.DataFrame(rows)
        .groupby(["method", "group"])
        .agg(
            **{f"median steps to {thr:g}": (f"steps to {thr:g}", "median") for thr in THRESHOLDS},
            **{
                f"reached {thr:g}": (f"steps to {thr:g}", lambda s: f"{s.notna().sum()}/{len(s)}")
                for thr in THRESHOLDS
            },
        )
        .reset_index()
    )
    return Section(
        "steps to reach 1e-2 and 1e-3",
        prose(PROSE, "steps_to", HERE),
        tables=[("steps to threshold", _ordered(agg, ["method", "group"]))],
    )


def batch_sweep(r: _Rows) -> Section | None:
    """spd-kl's final suboptimality at the other batch sizes (methods 'spd-kl@<n>')."""
    sweep = _final(r.df[r.df["method"].str.contains("@")])
    if not len(sweep):
        return None
    t = _fmt(mean_se_table(sweep, by=("method", "samples")))[["method", "samples", "mean ± s.e."]]
    return Section(
        "samples: spd-kl at other batch sizes",
        prose(PROSE, "sweep", HERE),
        tables=[("final suboptimality by batch size", t)],
    )


def _spd_case(main: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """(case, its spd-kl rows per logged step) for the first random case (else the first case);
    None without spd-kl trajectories."""
    spd = main[main["method"].eq("spd-kl") & main["step"].notna()]
    if not len(spd):
        return None
    cases = sorted(spd["case"].unique())
    case = next((c for c in cases if c.startswith("random")), cases[0])
    return case, spd[spd["case"].eq(case)]


def stability(r: _Rows) -> Section | None:
    """SPD's lam, mu and Z over the second half of one run: mean and standard deviation."""
    if (picked := _spd_case(r.main)) is None:
        return None
    case, c = picked
    last = c[c["step"].eq(c["step"].max())]
    tail = c[c["step"] >= 0.5 * c["step"].max()]
    stab = tail.groupby("metric")["value"].agg(["mean", "std"]).reset_index()
    stab = stab[stab["metric"].isin(["mu", "Z_hat", "Z"]) | stab["metric"].str.match(r"lam_\d")]
    z = float(last[last["metric"].eq("Z")]["value"].iloc[0])
    return Section(
        "SPD stability (the paper's claim: lam settles, mu settles, Z -> 1)",
        prose(PROSE, "stability", HERE, case=case, z=z),
        tables=[("second-half statistics", stab)],
    )


def samples_figure(sto: pd.DataFrame, sweep: pd.DataFrame, path: Path) -> Path:
    """Exact suboptimality against domain samples drawn (log-log), one line per method, the
    batch-size sweep's end points as black dots."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method in [m for m in METHODS if m in set(sto["method"])]:
        s = sto[sto["method"].eq(method)].groupby("samples")["value"].mean()
        ax.plot(s.index, np.maximum(s.values, FLOOR), label=method)
    if len(sweep):
        s = sweep.groupby("samples")["value"].mean()
        ax.plot(s.index, np.maximum(s.values, FLOOR), "ko", label="spd-kl, other batch sizes (end)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("domain samples drawn (count)")
    ax.set_ylabel("exact suboptimality (nats)")
    ax.grid(alpha=0.3)
    legend_outside(ax, title="method", fontsize=7)
    return save_figure(
        fig,
        path,
        alt="exact suboptimality (nats) against domain samples drawn, "
        "log-log, random problems, one line per method",
    )


def trajectories_figure(main: pd.DataFrame, case: str, c: pd.DataFrame, path: Path) -> Path:
    """SPD on ``case`` (rows ``c``): lam_t per domain with lam* dotted, mu_t, estimated and exact
    Z_t, against the step."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    star = main[main["case"].eq(case) & main["method"].eq("exact")].set_index("metric")["value"]
    for m in sorted(x for x in c["metric"].unique() if x.startswith("lam_") and x != "lam_error"):
        s = c[c["metric"].eq(m)].set_index("step")["value"].sort_index()
        (line,) = axes[0].plot(s.index, s.values, label=m)
        if f"lam_star_{m[4:]}" in star:
            axes[0].axhline(star[f"lam_star_{m[4:]}"], color=line.get_color(), ls=":", lw=1)
    axes[0].set_title(f"lam_t ({case}; dotted: lam*)", fontsize=10)
    axes[0].set_ylabel("weight")
    legend_outside(axes[0], fontsize=7)
    s = c[c["metric"].eq("mu")].set_index("step")["value"].sort_index()
    axes[1].plot(s.index, s.values)
    axes[1].set_title("mu_t (dual variable of Z = 1)", fontsize=10)
    for m, lab in (("Z_hat", "Zhat (EMA)"), ("Z", "exact Z")):
        s = c[c["metric"].eq(m)].set_index("step")["value"].sort_index()
        axes[2].plot(s.index, s.values, label=lab)
    axes[2].axhline(1.0, color="grey", lw=0.5)
    axes[2].set_title("Z_t (normaliser)", fontsize=10)
    legend_outside(axes[2], fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return save_figure(
        fig,
        path,
        alt=f"SPD with the kl signal on {case}: lam_t per domain with "
        "lam* dotted, mu_t, and the estimated and exact Z_t against "
        "the numeric step",
    )


def figures(r: _Rows) -> Section | None:
    """Suboptimality against steps and against samples; SPD's trajectories on one case."""
    figs = []
    groups = sorted(r.traj["group"].unique(), key=lambda g: (g != "random", g))
    if groups:
        path = save_figure(
            steps_figure(r.traj, groups),
            r.fig_dir / "convergence_vs_steps.png",
            alt="exact suboptimality (nats, log scale) against step, one panel per "
            f"problem group ({', '.join(groups)}), one line per method; grey "
            "lines at 1e-2 and 1e-3",
        )
        figs.append(
            (
                "exact suboptimality vs steps (mean over cases; log scale, floor 1e-7; grey: "
                "1e-2 solid, 1e-3 dotted)",
                path,
            )
        )
        sto = r.traj[r.traj["samples"].gt(0) & r.traj["group"].eq("random")]
        if len(sto):
            path = samples_figure(
                sto,
                _final(r.df[r.df["method"].str.contains("@")]),
                r.fig_dir / "convergence_vs_samples.png",
            )
            figs.append(("exact suboptimality vs samples, random problems", path))
    if (picked := _spd_case(r.main)) is not None:
        case, c = picked
        path = trajectories_figure(r.main, case, c, r.fig_dir / "spd_trajectories.png")
        figs.append((f"SPD (kl signal) trajectories on {case}: lam, mu and Z settle", path))
    return Section("figures", "", figures=figs) if figs else None


#: the report's sections in order; a builder returns None when its rows are absent
SECTIONS = (headline, final_table, steps_to_threshold, batch_sweep, stability, figures)


def report(df: pd.DataFrame, fig_dir) -> list:
    """The study's sections (`SECTIONS`) from its tidy rows alone."""
    r = _rows(df, fig_dir)
    return [sec for build in SECTIONS if (sec := build(r)) is not None]
