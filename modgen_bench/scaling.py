"""The decisive gate-vs-monolith experiment (issue 13): a capacity x budget sweep on real text.

One job (`run_cell`, a `modgen_bench.launch` job) is one (triple of corpora, expert size, seed);
it reuses the real-text pipeline's stages (`modgen_bench.pipeline`) and, per training budget B
(the experts' steps):

1. trains p experts for B steps and caches their log-likelihoods, with a proposal pool of
   SPD's total draws per expert (``spd.steps * spd.per_domain``), so no draw is reused by design
   (issue 13, item 3);
2. trains the SPD gate (lam signal ``excess``), restored to Z = 1 on ``n_restore`` draws per
   expert (`pipeline.gate.train_gate`, `algorithms.normaliser.restore_z`: SPD's last iterate
   meets the equality only up to its dual dynamics), then estimates Z on FRESH draws from
   q = (1/p) sum_k E[k] (own seed, never seen by SPD or the restoration) by the control-variate
   estimator with a 95% interval; the gate is graded as a proper likelihood,
   log pi_g - log Z_hat, the interval propagated to NLL. SPD's own gate (before restoration) is graded on the same fresh draws, and Z on the SPD pool
   is recorded beside it (the pool bias the issue reports);
3. grades the baselines: the constant gate 1/p and the Bayes-posterior causal router
   gamma_t(k) ∝ prod_{s<t} E[k](x_s | x_<s) (free: no training). With the uniform prior the
   router's student is exactly the constant gate (the product telescopes to
   (1/p) sum_k E[k](x)); both are computed, independently, and reported;
4. for each matching convention (`modgen_bench.matching`: ``compute``, ``tokens``) and each
   target non-embedding ratio r, trains the monolith on the uniform mixture and records, per test
   window, gate minus monolith: on the uniform mixture (all windows, equal per domain) and on
   the worst vertex (max_k NLL_k(gate) - max_k NLL_k(mono)), each with the per-window paired
   s.e. and a paired bootstrap over windows (`modgen_bench.stats`);
5. splits gate - monolith on domain k's windows into the routing cost proper (gate - constant
   gate), the shared domain-prior cost (constant gate - expert k, <= log p / (T - 1) per token:
   the price of not knowing the domain, which the monolith pays too) and the expert deficit
   (expert k - monolith) (issue 13, item 8).

The report (`report`) pools seeds: paired t intervals over seeds per cell, the crossover fit
delta = a + b log r + c log B (`modgen_bench.crossover`) with a bootstrap r* per convention and
triple, a figure, and a verdict on the paper's Table 1 claim under each convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .algorithms.normaliser import z_control_variate
from .config_utils import build
from .crossover import bootstrap_crossover, seed_crossover
from .data.corpora import VOCAB_SIZE
from .errors import UserError
from .experts import ExpertProposal
from .matching import CONVENTIONS, match_monolith, nonembedding_params, total_params
from .models import LMConfig, count_params
from .provenance import stable_seed
from .results import lam_label
from .sampling import draw_from_q, log_gate, log_weight, z_estimate
from .stats import paired_bootstrap, per_window_paired_se
from .threads import cpu_threads

__all__ = ["ScalingConfig", "run_cell", "cell_jobs", "bayes_router_nll", "const_gate_nll",
           "draws_from_q", "fresh_z", "routing_split", "worst_vertex_bootstrap"]


@dataclass
class ScalingConfig:
    """One preset of real_world/scaling/scaling.toml (sizes only; unknown keys are errors)."""

    triples: dict                       # name -> [corpus, corpus, corpus]
    seeds: list
    expert_sizes: list                  # d_model of the experts (1 layer each unless n_layer)
    budgets: list                       # experts' training steps
    ratios: list                        # target non-embedding ratios r (monolith / experts)
    conventions: list = field(default_factory=lambda: ["compute", "tokens"])
    block_size: int = 33
    n_layer: int = 1                    # experts' depth
    n_head: int = 2
    mono_layers: int = 2
    batch_size: int = 16                # windows per domain per step (experts and monolith)
    lr: float = 3e-3
    warmup: int = 20
    n_gate_train: int = 512
    n_eval: int = 128
    n_z_draws: int = 2048               # fresh draws from q for Z
    n_restore: int = 4096               # draws per expert the Z restoration solves on (0: none)
    gate: dict = field(default_factory=lambda: {"n_layer": 1, "n_head": 2, "d_model": 16,
                                                "d_ff": 64})
    spd: dict = field(default_factory=lambda: {"steps": 150, "per_domain": 16, "lr": 1e-2,
                                               "log_every": 15})
    n_boot: int = 1000
    resample: int = 0
    cpu_threads: int = 1
    checkpoint_every: int = 200

    @classmethod
    def from_dict(cls, d: dict) -> "ScalingConfig":
        cfg = build(cls, d, "scaling config")
        bad = [c for c in cfg.conventions if c not in CONVENTIONS]
        if bad:
            raise UserError(f"scaling config: unknown conventions {bad}; choose from {CONVENTIONS}")
        if len(set(cfg.budgets)) < 2 or len(set(cfg.ratios)) < 2:
            raise UserError("scaling config: the crossover fit needs >= 2 budgets and >= 2 ratios")
        if any(r <= 0 for r in cfg.ratios) or any(b < 1 for b in cfg.budgets):
            raise UserError("scaling config: ratios must be > 0 and budgets >= 1")
        if cfg.n_restore < 0 or cfg.n_z_draws < 2:
            raise UserError(f"scaling config: n_restore must be >= 0 and n_z_draws >= 2 "
                             f"(got {cfg.n_restore}, {cfg.n_z_draws})")
        return cfg

    @property
    def n_proposal(self) -> int:
        """SPD's total draws per expert: the proposal pool is at least that large."""
        return int(self.spd["steps"]) * int(self.spd["per_domain"])


def expert_config(cfg: ScalingConfig, d_model: int) -> LMConfig:
    return LMConfig(VOCAB_SIZE, cfg.block_size, cfg.n_layer, cfg.n_head, d_model, 4 * d_model)


def mono_template(cfg: ScalingConfig) -> LMConfig:
    return LMConfig(VOCAB_SIZE, cfg.block_size, cfg.mono_layers, cfg.n_head, cfg.n_head,
                    4 * cfg.n_head)


def bayes_router_nll(test_tok: torch.Tensor, prior=None) -> torch.Tensor:
    """(n,) per-token NLL of the Bayes-posterior causal router's student (PAPER.md section 4,
    Structural Distillation: the Bayes-optimal router is the posterior of the expert given the
    prefix): gamma_t(k) ∝ prior_k prod_{s<t} E[k](x_s | x_<s), student token prob
    sum_k gamma_t(k) E[k](x_t | x_<t). test_tok: (n, T-1, p) per-token log-probs."""
    n, L, p = test_tok.shape
    lp = test_tok.double()
    log_prior = torch.full((p,), -math.log(p), dtype=torch.float64) if prior is None else \
        torch.log(torch.as_tensor(prior, dtype=torch.float64))
    prefix = torch.cumsum(lp, dim=1) - lp                                 # (n, L, p) sum_{s<t}
    log_post = torch.log_softmax(log_prior + prefix, dim=-1)               # (n, L, p)
    tok = torch.logsumexp(log_post + lp, dim=-1)                           # (n, L)
    return -tok.sum(dim=1) / L


def worst_vertex_bootstrap(a, b, groups, rng, n_boot: int = 1000, level: float = 0.95) -> dict:
    """max_k mean_k(a) - max_k mean_k(b) over domains k (``groups``) and its paired bootstrap
    interval (windows resampled within each domain, the same indices for a and b)."""
    a, b, groups = np.asarray(a, float), np.asarray(b, float), np.asarray(groups)
    labels = np.unique(groups)
    idx = [np.flatnonzero(groups == g) for g in labels]
    point = max(a[i].mean() for i in idx) - max(b[i].mean() for i in idx)
    rng = np.random.default_rng(rng)
    ma, mb = np.zeros((n_boot, len(idx))), np.zeros((n_boot, len(idx)))
    for j, i in enumerate(idx):
        pick = i[rng.integers(0, i.size, size=(n_boot, i.size))]
        ma[:, j], mb[:, j] = a[pick].mean(axis=1), b[pick].mean(axis=1)
    stat = ma.max(axis=1) - mb.max(axis=1)
    lo, hi = np.quantile(stat, [0.5 - level / 2, 0.5 + level / 2])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def const_gate_nll(test_e: torch.Tensor, T: int) -> np.ndarray:
    """(n,) per-token NLL of the constant gate 1/p, -log((1/p) sum_k E[k](x)) / (T - 1), from
    the cached whole-window log E (n, p). Its Z is exactly 1 (a mixture of distributions)."""
    p = test_e.shape[-1]
    return (-(torch.logsumexp(test_e.double(), dim=-1) - math.log(p)) / (T - 1)).numpy()


def routing_split(gate, const, expert_k, mono) -> dict:
    """gate - mono on domain k's windows = routing_proper (gate - const) + domain_prior
    (const - expert_k, at most log p / (T - 1) per token: -log((1/p) sum_j E_j) <=
    -log((1/p) E_k)) + expert_deficit (expert_k - mono). Inputs: per-window NLL arrays."""
    g, c, e, m = (float(np.mean(v)) for v in (gate, const, expert_k, mono))
    return {"routing_proper": g - c, "domain_prior": c - e, "expert_deficit": e - m}


def draws_from_q(experts, n: int, seed: int, device):
    """n draws from q = (1/p) sum_k E[k] (inputs, log E (n, p)) from a CPU generator at ``seed``."""
    proposal = ExpertProposal(experts.experts, experts.T)
    inputs, log_e, _ = draw_from_q(proposal, n, torch.Generator().manual_seed(seed))
    return inputs, log_e


def fresh_z(gate, draws) -> dict:
    """Z_g on fresh ``draws`` from q: the control-variate estimate with its 95% interval
    (`algorithms.normaliser.z_control_variate`) and the plain mean of pi_g/q beside it."""
    inputs, log_e = draws
    log_w = log_weight(log_gate(gate, inputs), log_e)
    z, (lo, hi), se = z_control_variate(log_w, log_e)
    return {"": z, "_lo": lo, "_hi": hi, "_se": se, "_plain": z_estimate(log_w)[0]}


def _pool_z(cache, gate) -> float:
    """Z_g on SPD's own proposal pool (the draws it trained on)."""
    inputs = torch.cat(cache.drawn)
    log_e = torch.cat(cache.drawn_log_e)
    return z_estimate(log_weight(log_gate(gate, inputs), log_e))[0]


def run_cell(config: dict, triple: str, size: int, seed: int, out_dir, device: str = "cpu",
             progress: bool = False) -> tuple[list, dict]:
    """One (triple, expert size, seed): every budget, convention and ratio. Returns tidy rows
    (case = triple) and the corpora provenance."""
    cfg = ScalingConfig.from_dict(config)
    with cpu_threads(cfg.cpu_threads, device):
        return _cell(cfg, triple, size, seed, out_dir, device, progress)


def _cell(cfg, triple, size, seed, out_dir, dev, progress):
    from .pipeline import (
        LMTrain,
        SmallNet,
        Store,
        cache_experts,
        expert_nll,
        gate_nll,
        lm_nll,
        load_splits,
        train_experts,
        train_gate,
        train_retrain,
    )
    from .pipeline.data import job_info
    corpora = list(cfg.triples[triple])
    p, T = len(corpora), cfg.block_size
    store = Store(out_dir)
    rows = []
    base = dict(case=triple, seed=seed, expert_d=size)

    def add(method, metric, value, **extra):
        rows.append({**base, "method": method, "metric": metric, "value": float(value), **extra})

    splits = load_splits(corpora, T, cfg.n_gate_train, cfg.n_eval, cfg.resample)
    groups = np.repeat(np.arange(p), cfg.n_eval)
    e_cfg = expert_config(cfg, size)
    template = mono_template(cfg)
    for B in cfg.budgets:
        at = dict(budget=B)
        spec = LMTrain(cfg.n_layer, cfg.n_head, size, 4 * size, B, cfg.batch_size, cfg.lr,
                       cfg.warmup)
        experts = train_experts(splits, spec, seed, cfg.resample, store, dev, progress,
                                cfg.checkpoint_every)
        cache = cache_experts(experts, splits, cfg.n_proposal, stable_seed(seed, "proposal"),
                              store, dev, n_restore=cfg.n_restore)
        g = train_gate(splits, cache, SmallNet(**cfg.gate), cfg.spd, "excess", seed,
                       cfg.resample, store, dev, progress)
        fresh = draws_from_q(experts, cfg.n_z_draws, stable_seed(seed, B, "fresh-z"), dev)
        spd_z = fresh_z(g.gate_spd, fresh)
        for suffix, v in spd_z.items():                           # SPD's last iterate
            add("gate", "Z_fresh_spd" + suffix, v, **at)
        add("gate", "Z_pool", _pool_z(cache, g.gate_spd), **at)
        add("gate", "Z_hat_ema", g.history["Z_hat"].iloc[-1], **at)
        for name, v in (g.restoration or {}).items():             # Z = 1 restored (stage 4)
            add("gate", f"Z_restore_{name}", v, **at)
        zf = spd_z if g.gate_spd is g.gate else fresh_z(g.gate, fresh)     # no restoration: same
        for suffix, v in zf.items():
            add("gate", "Z_fresh" + suffix, v, **at)
        z, z_lo, z_hi = zf[""], zf["_lo"], zf["_hi"]
        if not z > 0:
            raise ValueError(f"Z of the gate estimated at {z:.3g} on {cfg.n_z_draws} fresh draws "
                             "(not > 0): raise n_z_draws")
        # per-window NLL per token of every model on the test windows (domain by domain)
        test_e = cache.test
        raw = gate_nll(g.gate, splits.test, test_e, dev).double().numpy()
        if g.gate_spd is not g.gate:      # what the restoration cost: SPD's gate, / its own Z_hat
            z_spd = max(float(spd_z[""]), 1e-300)
            spd_nll = gate_nll(g.gate_spd, splits.test, test_e, dev).double().numpy()
            add("gate_spd", "nll_per_token", (spd_nll + math.log(z_spd) / (T - 1)).mean(),
                lam=_uniform(p), **at)
        nll = {"gate": raw + math.log(z) / (T - 1),               # proper likelihood: / Z_hat
               "const": const_gate_nll(test_e, T),
               "bayes_router": bayes_router_nll(cache.test_tok).numpy()}
        experts_nll = np.stack([expert_nll(test_e, k, T).double().numpy() for k in range(p)])
        # Z's interval propagated to the gate's NLL (per token): [log Z_lo, log Z_hi] / (T - 1)
        add("gate", "nll_Z_shift_lo", math.log(max(z_lo, 1e-300)) / (T - 1), **at)
        add("gate", "nll_Z_shift_hi", math.log(z_hi) / (T - 1), **at)
        for name, v in nll.items():
            for k in range(p):
                add(name, "nll_per_token", v[groups == k].mean(), lam=_vertex(p, k), **at)
            add(name, "nll_per_token", v.mean(), lam=_uniform(p), **at)
        for k in range(p):
            add(f"expert_{k}", "nll_per_token", experts_nll[k, groups == k].mean(),
                lam=_vertex(p, k), **at)
        rng = np.random.default_rng(stable_seed(seed, B, "boot"))
        for name in ("const", "bayes_router"):
            _deltas(add, "gate", name, nll["gate"], nll[name], groups, rng, cfg.n_boot, at)
        n_gate = count_params(g.gate)
        for conv in cfg.conventions:
            for r in cfg.ratios:
                plan = match_monolith(conv, e_cfg, p, B, cfg.batch_size, template, r=r,
                                      gate_params=n_gate)
                mspec = LMTrain(cfg.mono_layers, cfg.n_head, plan.d_model, plan.d_ff, plan.steps,
                                cfg.batch_size, cfg.lr, cfg.warmup)
                mono = train_retrain(splits, mspec, plan.d_model, np.full(p, 1.0 / p),
                                     f"mono-d{plan.d_model}-s{plan.steps}", seed, cfg.resample,
                                     store, dev, progress, cfg.checkpoint_every)
                m = lm_nll(mono.model, splits.test, dev).double().numpy()
                cell = {**at, "convention": conv, "r_target": r, "r": plan.r,
                        "compute_ratio": plan.compute_ratio, "token_ratio": plan.token_ratio,
                        "params_ratio": plan.params_ratio, "mono_d": plan.d_model,
                        "mono_steps": plan.steps}
                for k in range(p):
                    add("mono", "nll_per_token", m[groups == k].mean(), lam=_vertex(p, k), **cell)
                add("mono", "nll_per_token", m.mean(), lam=_uniform(p), **cell)
                for name in ("gate", "const"):
                    _deltas(add, name, "mono", nll[name], m, groups, rng, cfg.n_boot, cell)
                for k in range(p):                               # routing-cost split (item 8)
                    w = groups == k
                    parts = routing_split(nll["gate"][w], nll["const"][w], experts_nll[k, w], m[w])
                    for metric, v in parts.items():
                        add("gate", f"split_{metric}", v, lam=_vertex(p, k), **cell)
    params = {"expert": total_params(e_cfg), "expert_nonembedding": nonembedding_params(e_cfg)}
    for name, v in params.items():
        add(name, "n_params", v)
    return rows, job_info(splits, cfg.resample)


def _vertex(p, k) -> str:
    return lam_label(np.eye(p)[k])


def _uniform(p) -> str:
    return lam_label(np.full(p, 1.0 / p))


def _deltas(add, a, b, x, y, groups, rng, n_boot, extra):
    """Rows for a - b: uniform mixture (mean over all windows) with the per-window paired s.e.
    and a paired bootstrap; worst vertex with its paired bootstrap."""
    se = per_window_paired_se(x, y)
    boot = paired_bootstrap(x, y, rng=rng, n_boot=n_boot, groups=groups)
    worst = worst_vertex_bootstrap(x, y, groups, rng, n_boot)
    method = f"{a}-vs-{b}"
    for metric, v in (("delta_uniform", se.mean), ("delta_uniform_se", se.se),
                      ("delta_uniform_boot_lo", boot.lo), ("delta_uniform_boot_hi", boot.hi),
                      ("delta_worst", worst["mean"]), ("delta_worst_boot_lo", worst["lo"]),
                      ("delta_worst_boot_hi", worst["hi"])):
        add(method, metric, v, **extra)


def cell_jobs(config: dict, device: str = "cpu", progress: bool = False) -> list:
    """One `launch.Job` per (triple, expert size, seed)."""
    from .launch import Job
    cfg = ScalingConfig.from_dict(config)
    return [Job(f"{t}-d{d}-seed{s}", run_cell, dict(config=config, triple=t, size=d, seed=s,
                                                     device=device, progress=progress))
            for t in cfg.triples for d in cfg.expert_sizes for s in cfg.seeds]


def crossover_table(deltas, n_boot: int = 500, seed: int = 0):
    """Per (case, convention, expert_d): r* at each budget with its bootstrap interval, fitted on
    the per-seed gate-vs-mono uniform deltas (``deltas``: rows with delta, r, budget, seed), and
    the seed-level t interval (`crossover.seed_crossover`: *_seeds columns)."""
    import pandas as pd
    out = []
    for (case, conv, size), g in deltas.groupby(["case", "convention", "expert_d"]):
        for B in sorted(g["budget"].unique()):
            try:
                res = bootstrap_crossover(g["value"], g["r"], g["budget"], float(B),
                                          n_boot=n_boot, rng=stable_seed(seed, case, conv, B))
            except ValueError as err:
                out.append({"case": case, "convention": conv, "expert_d": size, "budget": B,
                            "r_star": np.nan, "lo": np.nan, "hi": np.nan,
                            "crossing_share": np.nan, "note": str(err)})
                continue
            fit = res.pop("fit")
            try:                                   # each seed's own fit: t interval over seeds
                by_seed = seed_crossover(g["value"], g["r"], g["budget"], g["seed"], float(B))
            except ValueError:                     # a seed without >= 2 ratios and budgets
                by_seed = {"r_star": np.nan, "lo": np.nan, "hi": np.nan, "n_crossing": 0,
                           "n_seeds": int(g["seed"].nunique())}
            row = {"case": case, "convention": conv, "expert_d": size, "budget": B,
                   **{k: res[k] for k in ("r_star", "lo", "hi", "crossing_share")},
                   "r_star_seeds": by_seed["r_star"], "lo_seeds": by_seed["lo"],
                   "hi_seeds": by_seed["hi"], "seeds_crossing": f"{by_seed['n_crossing']}/{by_seed['n_seeds']}",
                   "a": fit.coef[0], "b_logr": fit.coef[1], "c_logB": fit.coef[2],
                   "resid_sd": fit.resid_sd, "n": fit.n, "note": ""}
            try:                                   # with the log r x log B interaction
                inter = bootstrap_crossover(g["value"], g["r"], g["budget"], float(B),
                                            n_boot=n_boot, interaction=True,
                                            rng=stable_seed(seed, case, conv, B, "x"))
                row.update({"r_star_x": inter["r_star"], "lo_x": inter["lo"],
                            "hi_x": inter["hi"], "resid_sd_x": inter["fit"].resid_sd})
            except ValueError as err:
                row["note"] = f"interaction fit: {err}"
            out.append(row)
    return pd.DataFrame(out)
