"""Where the gate can matter on real text: window length T x controlled contamination alpha.

One real pair (PAPER.md section 5, "Real text"): domain A (``base``, the KJV by default) with a
share alpha of its documents replaced by text of domain B (``donor``, GCIDE articles), against
B's documents outside its donor pool (`modgen_bench.data.contamination`: exact document rate,
seeded, no document in both domains, every slice's sha256 in run.json). alpha = 0: disjoint
domains; alpha = 0.5: half of A's documents are B's text.

Each (T, alpha, seed) is one launcher job running the real-text replicate through its entry
point (`modgen_bench.replicate.run_replicate`) with block_size = T. The report compares, paired
over the test windows, the SPD gate (signal ``excess``, a proper likelihood: divided by its Z on
fresh draws) with the constant gate (1/2, 1/2) and with the best fixed-weight gate for the same
objective (``gate_fixed_best`` with signal ``excess``, `combiners.fixed`), on SPD's own endpoint,
the worst-case excess over each domain's expert (`worst_excess`), and on the uniform mixture.

Ceiling. pi_g(x) <= sum_k E_k(x) = p pi_u(x) for every gate g, pi_u the constant gate's model
(Z_u = 1 exactly), so a gate in G1 gains at most log p per window over the constant gate on
every mixture, hence on the worst-case excess: log p / (T - 1) nats per token (`ceiling`, as in
synthetic/gate_window.py).
Against a fixed gate w, pi_g <= pi_w / min_k w_k bounds the gain by log(1 / min_k w_k) / (T - 1).
The exact minimax value is not computable on real text (its support is every byte string of
length T - 1); the successor task (synthetic/gate_window.py) gives it where it is computable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modgen_bench.config_utils import build
from modgen_bench.errors import UserError
from modgen_bench.launch import Job, LaunchSpec, launch_into
from modgen_bench.replicate import load_config, run_replicate
from modgen_bench.reporting import Headline, Section, legend_outside, save_figure
from modgen_bench.reporting.figures import Figure
from modgen_bench.results import lam_label
from modgen_bench.stats import two_level_interval

__all__ = ["ContaminationConfig", "run", "report", "cell_job", "cell_table", "ceiling", "draw"]

#: the two domains of the pair
P = 2
#: the rivals of the SPD gate (method -> label) and their paired rows of the replicate:
#: (method, sign) so that sign * delta = SPD gate - rival
RIVALS = {"const_gate": "constant gate", "gate_fixed_best": "best fixed gate"}
PAIRS = [("gate_excess_logZ-vs-const_gate", 1.0), ("gate_fixed_best-vs-gate_excess_logZ", -1.0)]
#: the replicate's keys that the sweep sets per cell
CELL_KEYS = ("corpora", "block_size", "seeds", "resamples")


def ceiling(p: int, T: int) -> float:
    """log p / (T - 1): the most a gate in G1 gains over the constant gate, nats per token."""
    return math.log(p) / (T - 1)


@dataclass
class ContaminationConfig:
    """One preset: the pair, the grid and ``replicate``, the real-text pipeline's preset
    (`PipelineConfig` fields) without the keys set per cell (`CELL_KEYS`). ``expert_tokens``
    sets each cell's expert batch to ceil(expert_tokens / (T - 1)) windows, so experts see the
    same tokens at every T and a short window does not also mean a weaker expert."""

    replicate: dict
    base: str = "scripture"
    donor: str = "reference"
    alphas: list = field(default_factory=lambda: [0.0, 0.1, 0.3, 0.5])
    lengths: list = field(default_factory=lambda: [8, 16, 32, 64, 128])
    seeds: list = field(default_factory=lambda: [0, 1])
    contamination_seed: int = 0
    expert_tokens: int = 0  # tokens per expert step at every T (0: replicate's batch_size)

    @classmethod
    def from_dict(cls, d: dict) -> "ContaminationConfig":
        cfg = build(cls, d, "contamination config")
        if not cfg.seeds or not cfg.alphas or not cfg.lengths:
            raise UserError("contamination config: seeds, alphas and lengths must be non-empty")
        if any(isinstance(t, bool) or not isinstance(t, int) or t < 3 for t in cfg.lengths):
            raise UserError(
                f"contamination config: every length T must be an integer >= 3 (BOS "
                f"and two bytes; got {cfg.lengths})"
            )
        if not all(isinstance(a, (int, float)) and 0 <= a <= 1 for a in cfg.alphas):
            raise UserError(
                f"contamination config: every alpha must be in [0, 1] (got {cfg.alphas})"
            )
        if cfg.expert_tokens < 0:
            raise UserError(
                f"contamination config: expert_tokens must be >= 0 (got {cfg.expert_tokens})"
            )
        clash = sorted(set(CELL_KEYS) & set(cfg.replicate))
        if clash:
            raise UserError(
                f"contamination config: [replicate] must not set {clash} (the sweep "
                f"sets them per cell)"
            )
        return cfg

    def names(self, alpha: float) -> tuple[str, str]:
        """(contaminated A, B's rest): the corpus names of one alpha."""
        return (
            f"{self.base}+{self.donor}@{alpha:g}-s{self.contamination_seed}",
            f"{self.donor}-rest",
        )

    def cell_config(self, T: int, alpha: float, seed: int) -> dict:
        """The replicate preset of one cell; the best fixed-weight gate is always a rival."""
        a, b = self.names(alpha)
        rep = dict(self.replicate)
        if self.expert_tokens:  # the same training tokens at every T
            batch = max(1, math.ceil(self.expert_tokens / (T - 1)))
            rep["expert"] = {**rep.get("expert", {}), "batch_size": batch}
        rep["combiners"] = {"gate_fixed_best": {"signal": "excess"}, **rep.get("combiners", {})}
        rep.setdefault("mixtures", [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        corpora = [
            {
                "name": a,
                "contaminate": self.base,
                "donor": self.donor,
                "alpha": float(alpha),
                "seed": self.contamination_seed,
            },
            {"name": b, "rest_of": self.donor},
        ]
        return {
            **rep,
            "corpora": corpora,
            "block_size": int(T),
            "seeds": [int(seed)],
            "resamples": [],
        }


Config = ContaminationConfig


def cell_job(
    config: dict,
    seed: int,
    T: int,
    alpha: float,
    out_dir,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[list, dict]:
    """One (T, alpha, seed): the replicate's rows tagged with T and alpha, plus the contaminated
    corpus's composition (rows of case "composition"; run.json under the corpus)."""
    from modgen_bench.data.corpora import CORPORA

    rows, info = run_replicate(config, seed, 0, out_dir, device, progress)
    name = config["corpora"][0]["name"]
    comp = CORPORA[name].composition()
    for metric in ("rate", "byte_share", "n_docs", "n_replaced"):
        rows.append(
            {
                "case": "composition",
                "method": name,
                "seed": seed,
                "lam": "",
                "metric": metric,
                "value": float(getattr(comp, metric)),
                "resample": 0,
            }
        )
    info["corpora"].setdefault(name, {})["composition"] = asdict(comp)
    return [{**r, "T": int(T), "alpha": float(alpha)} for r in rows], info


def run(ctx) -> None:
    """Every (T, alpha, seed) as a launcher job; each cell's preset is checked before any runs."""
    cfg = ContaminationConfig.from_dict(ctx.config)
    spec = getattr(ctx, "launch", None) or LaunchSpec()
    jobs = []
    for T in cfg.lengths:
        for alpha in cfg.alphas:
            for seed in cfg.seeds:
                config = cfg.cell_config(T, alpha, seed)
                load_config(config)
                jobs.append(
                    Job(
                        f"T{T}-alpha{alpha:g}-seed{seed}",
                        cell_job,
                        dict(
                            config=config,
                            seed=seed,
                            T=T,
                            alpha=alpha,
                            device=ctx.device,
                            progress=spec.launcher == "serial",
                        ),
                    )
                )
    ctx.info["pair"] = {
        "base": cfg.base,
        "donor": cfg.donor,
        "contamination_seed": cfg.contamination_seed,
    }
    launch_into(ctx, jobs, spec)


def _interval(delta: np.ndarray, se: np.ndarray) -> dict:
    """Mean over seeds with its 95% interval over seeds AND the shared test windows
    (`stats.two_level_interval`); one seed: the windows' normal interval alone."""
    if len(delta) >= 2:
        iv = two_level_interval(delta, se)
        return {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "interval": "seeds+windows"}
    m, s = float(delta[0]), float(se[0])
    return {"mean": m, "lo": m - 1.96 * s, "hi": m + 1.96 * s, "interval": "windows (1 seed)"}


def worst_excess(df: pd.DataFrame) -> pd.DataFrame:
    """Per (T, alpha, seed, method): SPD's own endpoint, the worst-case excess over each domain's
    expert W = max_k NLL_m(P_k) - NLL_{E_k}(P_k) (nats/token; the max over the vertices is the
    max over every mixture, the excess being linear in lam), and ``vertex``, the k attaining it.
    The constant gate's W is at most log p / (T - 1) (pi_u >= E_k / p)."""
    test = df[df["case"].eq("test") & df["metric"].eq("nll_per_token")]
    comp = df[df["case"].eq("composition")].groupby(["T", "alpha"])["method"].first()
    vertices = [lam_label(np.eye(P)[k]) for k in range(P)]
    out = []
    for (T, alpha, seed), g in test.groupby(["T", "alpha", "seed"]):
        nll = g.pivot_table(index="method", columns="lam", values="value")
        mine = f"expert_{comp[(T, alpha)]}"
        other = [m for m in nll.index if m.startswith("expert_") and m != mine]
        own = [nll.loc[e, v] for e, v in zip([mine, *other], vertices, strict=True)]
        for m in ("gate_excess_logZ", *RIVALS):
            if m in nll.index:
                ex = [nll.loc[m, v] - o for v, o in zip(vertices, own, strict=True)]
                out.append(
                    {
                        "T": T,
                        "alpha": alpha,
                        "seed": seed,
                        "method": m,
                        "W": float(max(ex)),
                        "vertex": vertices[int(np.argmax(ex))],
                    }
                )
    return pd.DataFrame(out)


def _rival_cells(df: pd.DataFrame, W: pd.DataFrame, rival: str, pair: tuple) -> list:
    """Rows of `cell_table` for one rival: per (T, alpha) both endpoints' intervals over seeds.
    The worst-case excess difference's window s.e. is the paired s.e. at the gate's worst vertex:
    exact when both attain their worst case there, else it leaves out the rival's own error."""
    method, sign = pair
    paired = df[df["case"].eq("paired") & df["method"].eq(method)]
    se = paired[paired["metric"].eq("delta_window_se")].set_index(["T", "alpha", "seed", "lam"])
    uni = paired[paired["lam"].eq(lam_label(np.full(P, 1.0 / P)))]
    uni = uni.pivot_table(index=["T", "alpha", "seed"], columns="metric", values="value")
    g_w = W[W["method"].eq("gate_excess_logZ")].set_index(["T", "alpha", "seed"])
    r_w = W[W["method"].eq(rival)].set_index(["T", "alpha", "seed"])["W"]
    out = []
    for (T, alpha), g in g_w.groupby(level=["T", "alpha"]):
        keys = [k for k in g.index if k in r_w.index and k in uni.index]
        if not keys:
            continue
        d = np.array([g.loc[k, "W"] - r_w[k] for k in keys])
        s = np.array([se.loc[(*k, g.loc[k, "vertex"]), "value"] for k in keys])
        u = uni.loc[keys]
        worst, unif = (
            _interval(d, s),
            _interval(sign * u["delta"].to_numpy(), u["delta_window_se"].to_numpy()),
        )
        out.append(
            {
                "T": int(T),
                "alpha": float(alpha),
                "rival": RIVALS[rival],
                "n_seeds": len(keys),
                **worst,
                **{f"uniform_{c}": unif[c] for c in ("mean", "lo", "hi")},
                "W_gate": float(g.loc[keys, "W"].mean()),
                "W_rival": float(r_w[keys].mean()),
                "ceiling": ceiling(P, int(T)),
            }
        )
    return out


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (T, alpha, rival): SPD gate - rival on the worst-case excess (`worst_excess`; mean,
    lo, hi) and on the uniform mixture's NLL (uniform_*), nats/token with 95% intervals; the
    ceiling log p / (T - 1); against the fixed gate its own bound log(1 / min_k w_k) / (T - 1)
    (``fixed_bound``); byte_share: B's share of the contaminated domain's bytes."""
    W = worst_excess(df)
    out = []
    for rival, pair in zip(RIVALS, PAIRS, strict=True):
        out += _rival_cells(df, W, rival, pair)
    if not out:
        return pd.DataFrame()
    table = pd.DataFrame(out)
    w = df[df["case"].eq("weights") & df["method"].eq("gate_fixed_best")]
    wmin = w.groupby(["T", "alpha", "seed"])["value"].min().groupby(["T", "alpha"]).mean()
    share = df[df["case"].eq("composition") & df["metric"].eq("byte_share")]
    share = share.groupby(["T", "alpha"])["value"].mean()
    keys = list(zip(table["T"], table["alpha"], strict=True))
    table["byte_share"] = [share.get(k, np.nan) for k in keys]
    fixed = table["rival"].eq(RIVALS["gate_fixed_best"])
    table["fixed_bound"] = [
        -math.log(max(wmin[k], 1e-300)) / (k[0] - 1) if f and k in wmin.index else np.nan
        for k, f in zip(keys, fixed, strict=True)
    ]
    return table.sort_values(["rival", "T", "alpha"]).reset_index(drop=True)


def draw(table: pd.DataFrame):
    """Two panels over T (log scale), one line per alpha with its 95% interval: SPD gate -
    constant gate with the ceiling -log p / (T - 1) drawn (no gate in G1 goes below it), and SPD
    gate - best fixed gate with each cell's bound -log(1 / min_k w_k) / (T - 1) as a tick."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    alphas = sorted(table["alpha"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(alphas)))
    for ax, rival in zip(axes, RIVALS.values(), strict=True):
        t = table[table["rival"].eq(rival)]
        for i, (alpha, c) in enumerate(zip(alphas, colors, strict=True)):
            g = t[t["alpha"].eq(alpha)].sort_values("T")
            x = g["T"].to_numpy() * 2 ** (0.06 * (i - (len(alphas) - 1) / 2))  # side by side
            err = np.vstack([g["mean"] - g["lo"], g["hi"] - g["mean"]])
            ax.errorbar(
                x,
                g["mean"],
                yerr=np.nan_to_num(err),
                color=c,
                marker="o",
                ms=4,
                capsize=2,
                label=f"alpha = {alpha:g}",
            )
            if "fixed_bound" in g and g["fixed_bound"].notna().any():
                ax.plot(x, -g["fixed_bound"], "_", color=c, ms=10)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("window length T (tokens, BOS included)")
        ax.set_title(f"SPD gate - {rival}", fontsize=10)
    Ts = np.array(sorted(table["T"].unique()))
    grid = np.geomspace(Ts.min(), Ts.max(), 64)
    (line,) = axes[0].plot(
        grid, [-ceiling(P, T) for T in grid], "k--", lw=1, label="ceiling -log p / (T - 1)"
    )
    axes[0].set_ylabel("worst-case excess difference\n(nats/token; < 0: gate better)")
    legend_outside(axes[1], title="contamination")
    axes[0].legend(handles=[line], fontsize=8, loc="lower right", frameon=False)
    return fig


def _finding(table: pd.DataFrame) -> str:
    """The paragraph: where, on this grid, the gate beat each rival, against the ceiling."""
    parts = []
    for rival in RIVALS.values():
        t = table[table["rival"].eq(rival)]
        if t.empty:
            continue
        better, worse = int((t["hi"] < 0).sum()), int((t["lo"] > 0).sum())
        best = t.loc[t["mean"].idxmin()]
        cells = ", ".join(f"T = {r.T}, alpha = {r.alpha:g}" for r in t[t["hi"] < 0].itertuples())
        parts.append(
            f"On the worst-case excess, the SPD gate is better than the {rival} (interval below "
            f"0) in {better} of {len(t)} cells{f' ({cells})' if cells else ''} and worse "
            f"(interval above 0) in {worse}; its largest gain is {-best['mean']:.4f} nats/token "
            f"at T = {best['T']}, alpha = {best['alpha']:g}, {-best['mean'] / best['ceiling']:.0%}"
            f" of the ceiling log p / (T - 1) = {best['ceiling']:.4f} there."
        )
    const = table[table["rival"].eq(RIVALS["const_gate"])]
    if len(const):
        by_a = const.groupby("alpha")["mean"].mean()
        parts.append(
            "Mean over T of the gain over the constant gate by alpha: "
            + ", ".join(f"{a:g}: {-v:+.4f}" for a, v in by_a.items())
            + ". The constant gate's own worst-case "
            "excess, the room any gate has, as a share of the ceiling: "
            + "; ".join(
                f"T = {r.T}, alpha = {r.alpha:g}: {r.W_rival / r.ceiling:.0%}"
                for r in const.sort_values(["T", "alpha"]).itertuples()
            )
            + f". On the uniform mixture gate - constant "
            f"gate lies in [{const['uniform_mean'].min():+.4f}, {const['uniform_mean'].max():+.4f}]"
            f" (with good experts the constant gate is the uniform mixture's Bayes model)."
        )
    below = const[const["mean"] < -const["ceiling"]] if len(const) else const
    if len(below):
        parts.append(
            f"{len(below)} cell(s) gain more than the ceiling (possible only through "
            f"the error of Z_hat or of the test windows): "
            + ", ".join(f"T = {r.T}, alpha = {r.alpha:g}" for r in below.itertuples())
            + "."
        )
    long_T = sorted(int(t) for t in table["T"].unique() if ceiling(P, int(t)) < 0.02)
    if long_T:
        parts.append(
            f"From T = {long_T[0]} on the ceiling is below 0.02 nats/token whatever the "
            f"gate's architecture or training: a gate can matter by more than that only "
            f"in short windows."
        )
    return " ".join(parts)


def _headline(table: pd.DataFrame) -> Headline:
    """The answer at a glance: in how many (T, alpha) cells the SPD gate beats each free
    baseline (constant gate, best fixed weights) on its own endpoint, at pilot scale."""
    lines = []
    for rival in RIVALS.values():
        t = table[table["rival"].eq(rival)]
        if len(t):
            better, worse = int((t["hi"] < 0).sum()), int((t["lo"] > 0).sum())
            lines.append(
                f"- against the **{rival}**: better in {better}, worse in {worse}, undecided in "
                f"{len(t) - better - worse} of {len(t)} cells"
            )
    text = (
        "**Pilot scale.** Does the trained SPD gate beat the free baselines (no network "
        "trained) on its own objective, the worst-case excess over each domain's expert, as "
        "the window length T and the contamination alpha vary? Decided only where the 95% "
        "interval over seeds and test windows excludes 0.\n\n" + "\n".join(lines)
    )
    return Headline("Pilot scale: the SPD gate against the free baselines, T x alpha", text)


def report(df: pd.DataFrame, fig_dir) -> list:
    """Sections: the T x alpha figure with the ceiling, the paragraph, and the table."""
    df = df.copy()
    for c in ("T", "alpha", "seed", "value"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    table = cell_table(df)
    if table.empty:
        return [Section("Where the gate can matter (real pair)", text="No paired rows.")]
    path = save_figure(
        draw(table),
        Path(fig_dir) / "contamination_T_alpha",
        alt="SPD gate minus the constant gate and minus the best fixed gate "
        "against window length T, one line per contamination alpha, with the "
        "ceiling -log p / (T - 1)",
    )
    shown = table.copy()
    signed = ("mean", "lo", "hi", "uniform_mean", "uniform_lo", "uniform_hi")
    for c in (*signed, "W_gate", "W_rival", "ceiling", "fixed_bound", "byte_share"):
        if c in shown:
            fmt = "{:+.4f}" if c in signed else "{:.4f}"
            shown[c] = shown[c].map(fmt.format)
    text = (
        "PILOT scale (tiny byte-level experts trained for seconds; the numbers speak for this "
        "scale only). Pair: the contaminated domain A (a share alpha of its documents "
        "replaced by B's text of the same length; byte_share: B's share of A's bytes) and "
        "B's documents outside its donor pool. Endpoint: SPD's own objective, the worst-case "
        "excess over each domain's expert (W_gate, W_rival), gate - rival per token; "
        "uniform_*: gate - rival on the uniform mixture's NLL. 95% intervals over seeds and "
        "the shared test windows (one seed: windows only); the worst-case excess's window "
        "part is the paired s.e. at the gate's worst vertex. The gate's NLL includes "
        "log Z_hat / (T - 1) from fresh draws, whose own interval is not in these. The exact "
        "minimax value is not computable on real text (the support is every byte string of "
        "length T - 1); synthetic/gate_window.py gives it on the successor task. " + _finding(table)
    )
    return [
        _headline(table),
        Section(
            "Where the gate can matter: window length T x contamination alpha (real pair)",
            text=text,
            figures=[
                Figure(
                    "Worst-case excess over each domain's expert: SPD gate - "
                    "constant gate (left; dashed: the ceiling -log p / (T - 1)) "
                    "and - best fixed gate (right; ticks: -log(1 / min_k w_k) / "
                    "(T - 1)), nats/token, 95% intervals",
                    path,
                )
            ],
            tables=[
                ("SPD gate - rival per (T, alpha): worst-case excess and uniform mixture", shown)
            ],
        ),
    ]
