"""The real-text study's report from its tidy rows alone (PAPER.md section 5, Tables 1-2): setup
(parameter counts, lam*), NLL tables over mixtures and replicates, per-domain bits per byte with
the gate-vs-monolith gap split into routing cost and expert deficit, distillation and sampling,
gradient conflict. ``report(df, fig_dir) -> [Section]`` is what a suite plug-in exposes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["report", "GATES", "RETRAINS"]

GATES = ["gate_excess", "gate_excess_logZ", "gate_nll", "gate_nll_logZ", "router"]
RETRAINS = ["mono_uniform", "mono_lamstar"]


def _lam(label: str) -> np.ndarray:
    return np.asarray([float(v) for v in label.split(",")])


def _ms(values) -> str:
    """'mean ± std (n)' over replicates (std with ddof=1; the ± part is dropped when n = 1)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.4f}"
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f} (n={len(v)})"


def _groups(df: pd.DataFrame) -> dict:
    """Replicate groups: 'seeds' (data resample 0) and 'resamples' (the seed used for resamples)."""
    out = {"seeds": df[df["resample"] == 0]}
    if (df["resample"] > 0).any():
        base = df.loc[df["resample"] > 0, "seed"].iloc[0]
        out["resamples"] = df[df["seed"] == base]
    return out


def _table1(nll: pd.DataFrame, methods) -> pd.DataFrame:
    """NLL/token: uniform mixture, worst vertex and mean over mixtures; mean ± std per group."""
    uniform = next(l for l in nll["lam"].unique() if np.ptp(_lam(l)) < 1e-3)
    vertex = nll["lam"].map(lambda l: _lam(l).max() == 1.0)
    rows = []
    for m in methods:
        row = {"method": m}
        for gname, g in _groups(nll).items():
            gm = g[g["method"] == m]
            key = ["seed", "resample"]
            row[f"uniform mixture ({gname})"] = _ms(gm[gm["lam"] == uniform]["value"])
            row[f"worst vertex ({gname})"] = _ms(gm[vertex.loc[gm.index]].groupby(key)["value"].max())
            row[f"mean of mixtures ({gname})"] = _ms(gm.groupby(key)["value"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(nll: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per (lam, replicate): value(a) - value(b)."""
    w = nll.pivot_table(index=["lam", "seed", "resample"], columns="method", values="value")
    return (w[a] - w[b]).rename("diff").reset_index()


def report(df: pd.DataFrame, fig_dir: Path) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from modgen_bench.reporting import Section

    df = df.copy()
    for col in ("value", "seed", "resample", "step", "progress"):   # CSV blanks -> NaN
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["resample"] = df["resample"].astype(int)
    fig_dir = Path(fig_dir)
    exp = str(df["experiment"].iloc[0]) if "experiment" in df.columns else "real_world"
    nll = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    mix = [l for l in nll["lam"].unique() if not nll[nll["lam"] == l]["method"].str.startswith("oracle").all()]
    seeds = _groups(nll)["seeds"]
    methods = [m for m in GATES + RETRAINS if m in set(nll["method"])]
    sections = []

    # setup: parameter counts and lam*
    par = df[df["case"] == "params"].groupby(["method", "metric"])["value"].first().reset_index()
    lam = df[df["case"] == "lam_star"].groupby(["method", "metric"])["value"].agg(_ms).reset_index()
    counts = dict(zip(par["method"] + ":" + par["metric"], par["value"]))
    setup = (f"Experts + gate hold {counts.get('experts_plus_gate:n_params', 0):,.0f} parameters "
             f"(each expert {counts.get('expert:n_params', 0):,.0f}, gate {counts.get('gate:n_params', 0):,.0f}); "
             f"the monolithic retrain holds {counts.get('mono:n_params', 0):,.0f} "
             f"(d_model {counts.get('mono:d_model', 0):.0f}, chosen to match). NLL is in nats per byte-token "
             "on held-out test documents; bits per byte = NLL / ln 2. Replicates: 'seeds' vary "
             "initialisation and training order on data resample 0; 'resamples' redraw the document "
             "split (and hence every model) with one seed.")
    sections.append(Section("Setup", setup, tables=[("Parameter counts", par),
                                                    ("Least-favourable mixture lam* from SPD (mean ± std)", lam)]))

    # Table 1 and Table 2
    t1 = _table1(nll[nll["lam"].isin(mix)], methods)
    wide = seeds[seeds["lam"].isin(mix)].groupby(["lam", "method"])["value"].agg(_ms).unstack("method")
    t2 = wide[[m for m in methods if m in wide.columns]].copy()
    orc = seeds[seeds["method"].str.startswith("oracle_")]
    if len(orc):
        t2["oracle retrain"] = orc.groupby("lam")["value"].agg(_ms).reindex(t2.index).fillna("-")
    wins = {}
    for gate in ("gate_excess", "gate_excess_logZ"):
        d = _paired(seeds, gate, "mono_uniform")
        t2[f"{gate} - mono_uniform"] = d.groupby("lam")["diff"].agg(_ms).reindex(t2.index)
        wins[gate] = d.groupby("lam")["diff"].mean()
    t2 = t2.reset_index()
    dn = _paired(seeds, "gate_excess", "gate_nll").groupby("lam")["diff"].mean()
    z = df[(df["case"] == "Z") & (df["metric"] == "Z_hat")].groupby("method")["value"].mean()
    text = (f"The excess-signal gate beats the uniform-mixture retrain on {int((wins['gate_excess'] < 0).sum())} "
            f"of {len(dn)} test mixtures with pi_g unnormalised (what SPD trains), and on "
            f"{int((wins['gate_excess_logZ'] < 0).sum())} once pi_g is divided by its importance-sampling Z "
            f"(mean Z_hat: {', '.join(f'{m} {v:.3f}' for m, v in z.items())}; the *_logZ rows add "
            "log Z_hat / (T-1) per token; only they are proper likelihoods). Signal 'excess' minus 'nll', "
            f"NLL per mixture: {', '.join(f'{l}: {v:+.4f}' for l, v in dn.items())}. "
            "Cross-entropy is linear in lam, so its worst case over the simplex is the worst vertex "
            "(Table 1). For KL the worst case is also at a vertex (KL(P_lam||pi) <= sum_k lam_k "
            "KL(P_k||pi), PAPER.md section 2), but not necessarily the same one: KL_k = CE_k - H(P_k) and "
            "the domain entropies are unknown, so the worst cross-entropy vertex may just be the "
            "highest-entropy domain. The excess over the domain's best expert (KL_k - eps_k, entropy "
            "cancelled) is the KL proxy reported per domain below.")
    sections.append(Section("Table 1 and Table 2", text, tables=[
        ("Table 1: test NLL per token, mean ± std over replicates", t1),
        ("Table 2: test NLL per token on each mixture, mean ± std over seeds", t2)]))

    # per-domain bits per byte and excess over the domain's own expert
    bpb = df[(df["case"] == "test") & (df["metric"] == "bits_per_byte") & (df["resample"] == 0)]
    vert = bpb[bpb["lam"].map(lambda l: _lam(l).max() == 1.0)]
    per = vert.groupby(["method", "lam"])["value"].mean().unstack("lam")
    # domain k of lam (the config's corpora order), as the lam_star rows were written, k = 0 .. p-1
    names = [m[len("lam_"):] for m in df[df["case"] == "lam_star"]["metric"].drop_duplicates()]
    per.columns = [f"bpb on {names_by_vertex}" for names_by_vertex in per.columns]
    own = {l: vert[(vert["lam"] == l)] for l in vert["lam"].unique()}
    exc = {}
    for l, rows in own.items():
        k = int(np.argmax(_lam(l)))
        own_expert = rows[rows["method"].str.startswith("expert_")]
        # the domain's own expert is the best expert on its vertex
        base = own_expert.groupby("method")["value"].mean().min()
        exc[f"excess bpb on {names[k]}"] = rows.groupby("method")["value"].mean() - base
    exc = pd.DataFrame(exc)
    per = per.join(exc).reset_index()
    # gate - monolith at each vertex = (gate - best expert) + (best expert - monolith)
    split = pd.DataFrame({"routing cost: gate_excess - best expert": exc.loc["gate_excess"],
                          "expert deficit: best expert - mono_uniform": -exc.loc["mono_uniform"]})
    split["gate_excess - mono_uniform"] = split.sum(axis=1)
    split = split.rename(index=lambda c: c.removeprefix("excess bpb on ")).rename_axis("domain").reset_index()
    sections.append(Section("Per-domain bits per byte", f"Vertices are the domains in order {names}; "
                            "mean over seeds. 'excess' subtracts the best single expert on that domain. "
                            "At each vertex the gate's gap to the monolith splits into what routing "
                            "costs (the gate against the best expert there) and what the experts lack "
                            "(the best expert against the monolith): a gate can win only where the "
                            "experts beat the monolith on their own domains.",
                            tables=[("Per-domain test bits per byte", per),
                                    ("Gate vs monolith at each vertex, bits per byte", split)]))

    # distillation and sampling
    gap = _paired(nll, "router", "gate_excess").groupby("lam")["diff"].agg(_ms).reset_index()
    gap.columns = ["lam", "router - gate_excess (nats/token)"]
    zs = df[df["case"].isin(["Z", "sampling"])].groupby(["method", "metric"])["value"].agg(_ms).unstack("metric").reset_index()
    sections.append(Section("Structural distillation and sampling",
                            "The causal router is trained on sequences rejection-sampled from the excess "
                            "gate's model, with the experts' per-token probabilities cached. Rejection "
                            "acceptance estimates Z/p; with Z = 1 it equals the 1/p bound. SIR's ESS "
                            "fraction is (sum w)^2 / (n sum w^2).",
                            tables=[("Router NLL gap to the gate, every mixture (mean ± std over replicates)", gap),
                                    ("Z by importance sampling, SIR ESS, rejection acceptance", zs)]))

    # gradient conflict
    conf = df[df["case"] == "conflict"].copy()
    fig = fig_dir / f"{exp}_conflict.png"
    plt.figure(figsize=(6, 3.5))
    for m, g in conf.groupby("method"):
        c = g.groupby("progress")["value"].agg(["mean", "std"]).reset_index()
        plt.plot(c["progress"], c["mean"], marker="o", ms=3, label=m)
        plt.fill_between(c["progress"], c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0), alpha=0.2)
    plt.axhline(0, color="k", lw=0.5)
    plt.xlabel("training progress (fraction of steps)")
    plt.ylabel("mean pairwise cosine")
    plt.legend(fontsize=8)
    plt.tight_layout()
    plt.savefig(fig, dpi=110)
    plt.close()
    late_mean = conf[conf["progress"] >= 0.5].groupby("method")["value"].mean()
    late = conf[conf["progress"] >= 0.5].groupby("method")["value"].agg(_ms).reset_index()
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
                            tables=[("Gradient conflict late in training", late)],
                            figures=[("Gradient conflict along training (mean ± std over replicates)", fig)]))

    # NLL across mixtures
    fig2 = fig_dir / f"{exp}_mixtures.png"
    plt.figure(figsize=(7, 3.5))
    order = list(dict.fromkeys(mix))
    for m in methods:
        c = seeds[seeds["method"] == m].groupby("lam")["value"].mean().reindex(order)
        plt.plot(range(len(order)), c.values, marker="o", label=m)
    plt.xticks(range(len(order)), order, rotation=30, fontsize=7)
    plt.ylabel("test NLL (nats/token)")
    plt.legend(fontsize=7)
    plt.tight_layout()
    plt.savefig(fig2, dpi=110)
    plt.close()
    sections[1].figures.append(("Test NLL per token on each mixture (mean over seeds)", fig2))
    return sections
