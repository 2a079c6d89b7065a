"""The scaling study's cell: a capacity x budget sweep of the gate against monoliths on real text.

One job (`run_cell`, a `modgen_bench.launch` job) is one (triple of corpora, expert size, seed);
it reuses the real-text pipeline's stages (`modgen_bench.pipeline`) and, per training budget B
(the experts' steps):

1. trains p experts for B steps and caches their log-likelihoods, with a proposal pool of
   SPD's total draws per expert (``spd.steps * spd.per_domain``), so no draw is reused by design;
2. trains the SPD gate (lam signal ``excess``), restored to Z = 1 on ``n_restore`` draws per
   expert (`pipeline.gate.train_gate`, `algorithms.normaliser.restore_z`: SPD's last iterate
   meets the equality only up to its dual dynamics), then estimates Z on FRESH draws from
   q = (1/p) sum_k E[k] (own seed, never seen by SPD or the restoration) by the control-variate
   estimator with a 95% interval; the gate is graded as a proper likelihood,
   log pi_g - log Z_hat, the interval propagated to NLL. SPD's own gate (before restoration) is
   graded on the same fresh draws, and Z on the SPD pool
   is recorded beside it (the pool bias the issue reports);
3. grades the baselines: the constant gate 1/p and the Bayes-posterior causal router
   gamma_t(k) ∝ prod_{s<t} E[k](x_s | x_<s) (free: no training). With the uniform prior the
   router's student is exactly the constant gate (the product telescopes to
   (1/p) sum_k E[k](x)); both are computed, independently, and reported; and the best
   fixed-weight gate (`combiners.fixed`: constant weights chosen on SPD's training windows for
   the worst vertex, free: no network trained), against the monoliths too;
4. for each matching convention (`modgen_bench.matching`: ``compute``, ``compute_total``,
   ``tokens``) and each target non-embedding ratio r, trains the monolith on the uniform mixture
   (warm-up a fraction ``warmup_frac`` of its steps; learning rate chosen from ``mono_lrs`` by
   NLL on the validation windows, `select_lr`) and records, per test window, gate minus
   monolith on the uniform mixture and on every vertex (per-window paired s.e.), the difference
   of the worst vertices, and SPD's own endpoint: the difference of the worst-case excesses
   max_k [NLL_k - NLL_k(expert k)] (paired bootstraps over windows, `modgen_bench.stats`);
5. splits gate - monolith on domain k's windows into the routing cost proper (gate - constant
   gate), the shared domain-prior cost (constant gate - expert k, <= log p / (T - 1) per token:
   the price of not knowing the domain, which the monolith pays too) and the expert deficit
   (expert k - monolith);
6. counts every FLOP of both sides (`matching.gate_side_flops`; the monolith's training, and its
   learning-rate selection apart).

The report (the plug-in, scaling.py beside this file) pools seeds with intervals that carry the
shared test
windows' error (`stats.two_level_interval`), tests "better on every mixture" with Holm's
correction (`stats.every_mixture`), answers at the paper's ratio first and states a crossover
only where the cells show one (`crossover_table`, `crossover.checked_crossover`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from modgen_bench.algorithms.normaliser import z_control_variate
from modgen_bench.combiners.fixed import best_fixed_weights, fixed_gate_nll
from modgen_bench.config_utils import build
from modgen_bench.crossover import checked_crossover
from modgen_bench.errors import UserError
from modgen_bench.experts import ExpertProposal
from modgen_bench.experts.builtin import BuiltinFamily
from modgen_bench.launch import Job
from modgen_bench.matching import (
    CONVENTIONS,
    causal_pass_flops,
    gate_side_flops,
    match_monolith,
    nonembedding_count,
    nonembedding_params,
    total_params,
    train_flops,
)
from modgen_bench.models import LMConfig, count_params, lm_config
from modgen_bench.pipeline import (
    LMTrain,
    SmallNet,
    StageRun,
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
from modgen_bench.pipeline.data import job_info
from modgen_bench.pipeline.evaluate import bayes_router_nll, const_gate_nll, routing_split
from modgen_bench.provenance import stable_seed
from modgen_bench.results import lam_label
from modgen_bench.sampling import draw_from_q, log_gate, log_weight, z_estimate
from modgen_bench.sequence.train import warmup_steps
from modgen_bench.stats import paired_bootstrap, per_window_paired_se, worst_vertex_bootstrap
from modgen_bench.threads import cpu_threads

__all__ = [
    "ScalingConfig",
    "run_cell",
    "cell_jobs",
    "bayes_router_nll",
    "const_gate_nll",
    "draws_from_q",
    "fresh_z",
    "routing_split",
    "worst_vertex_bootstrap",
    "select_lr",
    "crossover_table",
    "projected_flops",
]


#: How a preset's headline names its scale (quick presets are pilots, never the verdict).
SCALES = {"pilot": "Pilot scale", "decisive": "Decisive preset", "full": "Full scale"}


@dataclass
class ScalingConfig:
    """One preset of real_world/scaling/scaling.toml (sizes only; unknown keys are errors)."""

    triples: dict  # name -> [corpus, corpus, corpus]
    seeds: list
    expert_sizes: list  # d_model of the experts (1 layer each unless n_layer)
    budgets: list  # experts' training steps
    ratios: list  # target non-embedding ratios r (monolith / experts)
    conventions: list = field(default_factory=lambda: ["compute", "tokens"])
    block_size: int = 33
    n_layer: int = 1  # experts' depth
    n_head: int = 2
    mono_layers: int = 2
    batch_size: int = 16  # windows per domain per step (experts and monolith)
    lr: float = 3e-3  # experts' learning rate
    warmup_frac: float = 0.1  # warm-up as a fraction of each run's steps (both sides)
    mono_lrs: list = field(default_factory=list)  # the monolith's LR grid ([] = [lr] only)
    scale: str = "pilot"  # a key of SCALES: named in every headline
    paper_ratio: float = 0.26  # r at which the paper's Table 1 matched total params
    n_gate_train: int = 512
    n_eval: int = 128
    n_z_draws: int = 2048  # fresh draws from q for Z
    n_restore: int = 4096  # draws per expert the Z restoration solves on (0: none)
    gate: dict = field(
        default_factory=lambda: {"n_layer": 1, "n_head": 2, "d_model": 16, "d_ff": 64}
    )
    spd: dict = field(
        default_factory=lambda: {"steps": 150, "per_domain": 16, "lr": 1e-2, "log_every": 15}
    )
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
        if (
            any(r <= 0 for r in cfg.ratios)
            or any(b < 1 for b in cfg.budgets)
            or not cfg.paper_ratio > 0
        ):
            raise UserError("scaling config: ratios and paper_ratio must be > 0 and budgets >= 1")
        if not 0 <= cfg.warmup_frac < 1 or any(not lr > 0 for lr in cfg.mono_lrs):
            raise UserError(
                f"scaling config: warmup_frac must be in [0, 1) and mono_lrs > 0 "
                f"(got {cfg.warmup_frac}, {cfg.mono_lrs})"
            )
        if cfg.scale not in SCALES:
            raise UserError(
                f"scaling config: scale must be one of {sorted(SCALES)} (got {cfg.scale!r})"
            )
        if cfg.n_restore < 0 or cfg.n_z_draws < 2:
            raise UserError(
                f"scaling config: n_restore must be >= 0 and n_z_draws >= 2 "
                f"(got {cfg.n_restore}, {cfg.n_z_draws})"
            )
        return cfg

    @property
    def n_proposal(self) -> int:
        """SPD's total draws per expert: the proposal pool is at least that large."""
        return int(self.spd["steps"]) * int(self.spd["per_domain"])


def expert_config(cfg: ScalingConfig, d_model: int) -> LMConfig:
    """An expert of width ``d_model`` (d_ff = 4 d_model), a byte LM of the built-in family."""
    spec = SmallNet(cfg.n_layer, cfg.n_head, d_model, 0)
    return lm_config(spec, BuiltinFamily.vocab_size, cfg.block_size)


def mono_template(cfg: ScalingConfig) -> LMConfig:
    """The monolith's depth at the narrowest width (d_model = n_head), which matching widens."""
    spec = SmallNet(cfg.mono_layers, cfg.n_head, cfg.n_head, 0)
    return lm_config(spec, BuiltinFamily.vocab_size, cfg.block_size)


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


def run_cell(
    config: dict,
    triple: str,
    size: int,
    seed: int,
    out_dir,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[list, dict]:
    """One (triple, expert size, seed): every budget, convention and ratio. Returns tidy rows
    (case = triple) and the corpora provenance."""
    cfg = ScalingConfig.from_dict(config)
    with cpu_threads(cfg.cpu_threads, device):
        run = StageRun(Store(out_dir), seed, cfg.resample, device, progress, cfg.checkpoint_every)
        return _cell(cfg, triple, size, run)


def _cell(cfg, triple, size, run: StageRun):
    corpora, seed = list(cfg.triples[triple]), run.seed
    rows = []
    base = dict(
        case=triple,
        seed=seed,
        expert_d=size,
        resample=cfg.resample,
        scale=cfg.scale,
        paper_ratio=cfg.paper_ratio,
    )

    def add(method, metric, value, **extra):
        rows.append({**base, "method": method, "metric": metric, "value": float(value), **extra})

    splits = load_splits(corpora, cfg.block_size, cfg.n_gate_train, cfg.n_eval, cfg.resample)
    for B in cfg.budgets:
        side = _gate_side(cfg, splits, size, B, run, add)
        for conv in cfg.conventions:
            for r in cfg.ratios:
                _monolith_cell(cfg, splits, side, conv, r, run, add)
    e_cfg = expert_config(cfg, size)
    params = {"expert": total_params(e_cfg), "expert_nonembedding": nonembedding_params(e_cfg)}
    for name, v in params.items():
        add(name, "n_params", v)
    return rows, job_info(splits, cfg.resample)


@dataclass
class _Side:
    """What the monolith cells of one budget need from the gate side."""

    budget: int
    expert_d: int
    nll: dict  # name -> (n,) per-window NLL per token (gate, const, bayes_router)
    experts_nll: np.ndarray  # (p, n): expert k on every window
    groups: np.ndarray  # (n,) domain of each window
    n_gate: int
    flops: object  # matching.GateSideFlops
    rng: np.random.Generator


def _gate_side(cfg, splits, size, B, run: StageRun, add) -> _Side:
    """Experts, cache, SPD gate, Z on fresh draws, grading of the gate and its baselines."""
    p, T, seed, dev = splits.p, cfg.block_size, run.seed, run.device
    at = dict(budget=B)
    spec = LMTrain(
        cfg.n_layer,
        cfg.n_head,
        size,
        4 * size,
        B,
        cfg.batch_size,
        cfg.lr,
        warmup_steps(B, cfg.warmup_frac),
    )
    experts = train_experts(splits, spec, run)
    cache = cache_experts(
        experts,
        splits,
        run,
        n_proposal=cfg.n_proposal,
        seed=stable_seed(seed, "proposal"),
        n_restore=cfg.n_restore,
    )
    g = train_gate(splits, cache, run, spec=SmallNet(**cfg.gate), spd=cfg.spd, signal="excess")
    fresh = draws_from_q(experts, cfg.n_z_draws, stable_seed(seed, B, "fresh-z"), dev)
    nll = _grade_gate(cfg, g, cache, splits, fresh, dev, add, at)
    nll["gate_fixed_best"] = _fixed_best(cache, splits, add, at)
    groups = np.repeat(np.arange(p), cfg.n_eval)
    test_e = cache.test
    experts_nll = np.stack([expert_nll(test_e, k, T).double().numpy() for k in range(p)])
    for name, v in nll.items():
        for k in range(p):
            add(name, "nll_per_token", v[groups == k].mean(), lam=_vertex(p, k), **at)
        add(name, "nll_per_token", v.mean(), lam=_uniform(p), **at)
        add(name, "worst_excess", _worst_excess(v, experts_nll, groups), **at)
    for k in range(p):
        add(
            f"expert_{k}",
            "nll_per_token",
            experts_nll[k, groups == k].mean(),
            lam=_vertex(p, k),
            **at,
        )
    rng = np.random.default_rng(stable_seed(seed, B, "boot"))
    for name in ("const", "bayes_router"):
        _deltas(add, "gate", name, nll["gate"], nll[name], groups, experts_nll, rng, cfg.n_boot, at)
    flops = _gate_flops(cfg, splits, size, B, g)
    for part, v in asdict(flops).items():
        add("gate", f"flops_{part}", v, **at)
    add("gate", "flops_total", flops.total, **at)
    return _Side(B, size, nll, experts_nll, groups, count_params(g.gate), flops, rng)


def _gate_flops(cfg, splits, size, B, g):
    """`matching.gate_side_flops` of this budget's experts and gate (restoration steps as run)."""
    p = splits.p
    n_restore = p * cfg.n_restore if g.restoration else 0
    steps = int((g.restoration or {}).get("steps", 0))
    n_draws = p * cfg.n_proposal + n_restore + cfg.n_z_draws
    gate = (nonembedding_count(g.gate), cfg.gate["n_layer"], cfg.gate["d_model"])
    n_routed = 2 * (p * cfg.n_eval + cfg.n_z_draws)  # SPD's gate and the restored one
    # windows scored by every expert: SPD's pool, the test and the validation windows
    return gate_side_flops(
        expert_config(cfg, size),
        p,
        B,
        cfg.batch_size,
        p * (cfg.n_gate_train + 2 * cfg.n_eval),
        n_draws,
        gate,
        int(cfg.spd["steps"]),
        int(cfg.spd["per_domain"]),
        n_restore,
        steps,
        n_routed,
    )


def _grade_gate(cfg, g, cache, splits, fresh, dev, add, at) -> dict:
    """Z of SPD's and the restored gate on fresh draws; per-window NLL per token of the gate
    (divided by its fresh Z), the constant gate and the Bayes router on the test windows."""
    p, T = splits.p, cfg.block_size
    spd_z = fresh_z(g.gate_spd, fresh)
    for suffix, v in spd_z.items():  # SPD's last iterate
        add("gate", "Z_fresh_spd" + suffix, v, **at)
    add("gate", "Z_pool", _pool_z(cache, g.gate_spd), **at)
    add("gate", "Z_hat_ema", g.history["Z_hat"].iloc[-1], **at)
    for name, v in (g.restoration or {}).items():  # Z = 1 restored (stage 4)
        add("gate", f"Z_restore_{name}", v, **at)
    zf = spd_z if g.gate_spd is g.gate else fresh_z(g.gate, fresh)  # no restoration: same
    for suffix, v in zf.items():
        add("gate", "Z_fresh" + suffix, v, **at)
    z, z_lo, z_hi = zf[""], zf["_lo"], zf["_hi"]
    if not z > 0:
        raise ValueError(
            f"Z of the gate estimated at {z:.3g} on {cfg.n_z_draws} fresh draws "
            "(not > 0): raise n_z_draws"
        )
    test_e = cache.test
    raw = gate_nll(g.gate, splits.test, test_e, dev).double().numpy()
    if g.gate_spd is not g.gate:  # what the restoration cost: SPD's gate, / its own Z_hat
        z_spd = max(float(spd_z[""]), 1e-300)
        spd_nll = gate_nll(g.gate_spd, splits.test, test_e, dev).double().numpy()
        add(
            "gate_spd",
            "nll_per_token",
            (spd_nll + math.log(z_spd) / (T - 1)).mean(),
            lam=_uniform(p),
            **at,
        )
    # Z's interval propagated to the gate's NLL (per token): [log Z_lo, log Z_hi] / (T - 1)
    add("gate", "nll_Z_shift_lo", math.log(max(z_lo, 1e-300)) / (T - 1), **at)
    add("gate", "nll_Z_shift_hi", math.log(z_hi) / (T - 1), **at)
    return {
        "gate": raw + math.log(z) / (T - 1),  # proper likelihood: / Z_hat
        "const": const_gate_nll(test_e, T),
        "bayes_router": bayes_router_nll(cache.test_tok).numpy(),
    }


def _fixed_best(cache, splits, add, at) -> np.ndarray:
    """(n,) per-window NLL per token of the best fixed-weight gate (`combiners.fixed`: w on
    SPD's training windows for the worst vertex, free: no network trained), graded on the test
    windows (a mixture of the experts, Z = 1 exactly); its weight rows name the corpora."""
    pool = cache.pool.double()  # (p, n, p) whole windows
    w, value = best_fixed_weights([pool[k].numpy() for k in range(splits.p)])
    for name, v in zip(splits.corpora, w, strict=True):
        add("gate_fixed_best", f"w_{name}", v, **at)
    add("gate_fixed_best", "train_worst_nll_per_token", value / (splits.T - 1), **at)
    return fixed_gate_nll(w, cache.test, splits.T).numpy()


def select_lr(train_at, val_nll, lrs) -> tuple[float, object, dict]:
    """Model selection on a small grid (DomainBed style, validation split): ``train_at(lr)``
    trains a model, ``val_nll(model)`` scores it on validation windows; returns (the lr with the
    lowest validation NLL, its model, {lr: validation NLL})."""
    scores, models = {}, {}
    for lr in lrs:
        models[lr] = train_at(lr)
        scores[lr] = float(val_nll(models[lr]))
    best = min(scores, key=scores.get)
    return best, models[best], scores


def _monolith_plan(cfg, splits, side, conv, r):
    """The monolith's shape and steps matching the gate side under ``conv`` at target ratio r."""
    return match_monolith(
        conv,
        expert_config(cfg, side.expert_d),
        splits.p,
        side.budget,
        cfg.batch_size,
        mono_template(cfg),
        r=r,
        gate_params=side.n_gate,
        extra_flops=side.flops.beyond_training,
    )


def _train_monolith(cfg, splits, run: StageRun, plan, lr):
    """The monolith of ``plan`` trained on the uniform mixture at learning rate ``lr``."""
    mspec = LMTrain(
        cfg.mono_layers,
        cfg.n_head,
        plan.d_model,
        plan.d_ff,
        plan.steps,
        cfg.batch_size,
        lr,
        warmup_steps(plan.steps, cfg.warmup_frac),
    )
    return train_retrain(
        splits,
        run,
        spec=mspec,
        d_model=plan.d_model,
        lam=np.full(splits.p, 1.0 / splits.p),
        method=f"mono-d{plan.d_model}-s{plan.steps}",
    ).model


def _monolith_columns(cfg, side, conv, r, plan, lr) -> dict:
    """The cell's columns on every monolith row: budget, convention, ratios, shape, lr."""
    return {
        "budget": side.budget,
        "convention": conv,
        "r_target": r,
        "r": plan.r,
        "compute_ratio": plan.compute_ratio,
        "token_ratio": plan.token_ratio,
        "params_ratio": plan.params_ratio,
        "mono_d": plan.d_model,
        "mono_steps": plan.steps,
        "mono_lr": lr,
        "mono_warmup": warmup_steps(plan.steps, cfg.warmup_frac),
    }


def _monolith_rows(cfg, p, side, plan, m, lrs, scores, add, cell) -> None:
    """The monolith's own rows: NLL per vertex and uniform, worst excess, FLOPs, the lr grid."""
    groups = side.groups
    mono_cfg = replace(mono_template(cfg), d_model=plan.d_model, d_ff=plan.d_ff)
    train = train_flops(mono_cfg, plan.steps, p * cfg.batch_size)
    for k in range(p):
        add("mono", "nll_per_token", m[groups == k].mean(), lam=_vertex(p, k), **cell)
    add("mono", "nll_per_token", m.mean(), lam=_uniform(p), **cell)
    add("mono", "worst_excess", _worst_excess(m, side.experts_nll, groups), **cell)
    add("mono", "flops_train", train, **cell)
    add("mono", "flops_selection", train * (len(lrs) - 1), **cell)
    add(
        "mono", "flops_eval", causal_pass_flops(mono_cfg, p * cfg.n_eval * (len(lrs) + 1)), **cell
    )  # validation per grid point, then the test
    add("mono", "flops_ratio_total", train / side.flops.total, **cell)
    for v_lr, v in scores.items():
        add("mono", "val_nll", v, lr=v_lr, **cell)


def _gate_vs_mono_rows(cfg, side, m, rng_fixed, add, cell) -> None:
    """The gate, constant gate and best fixed gate minus the monolith: every delta row."""
    for name, rng in (("gate", side.rng), ("const", side.rng), ("gate_fixed_best", rng_fixed)):
        _deltas(
            add,
            name,
            "mono",
            side.nll[name],
            m,
            side.groups,
            side.experts_nll,
            rng,
            cfg.n_boot,
            cell,
        )


def _split_rows(p, side, m, add, cell) -> None:
    """The routing-cost split of gate - monolith on each domain's windows."""
    for k in range(p):
        w = side.groups == k
        parts = routing_split(
            side.nll["gate"][w], side.nll["const"][w], side.experts_nll[k, w], m[w]
        )
        for metric, v in parts.items():
            add("gate", f"split_{metric}", v, lam=_vertex(p, k), **cell)


def _monolith_cell(cfg, splits, side, conv, r, run: StageRun, add):
    """The monolith at (convention, r) with its learning rate chosen on the validation windows,
    and every gate - monolith row of this cell."""
    plan = _monolith_plan(cfg, splits, side, conv, r)
    lrs = cfg.mono_lrs or [cfg.lr]
    lr, model, scores = select_lr(
        lambda lr: _train_monolith(cfg, splits, run, plan, lr),
        lambda m: lm_nll(m, splits.val, run.device).mean(),
        lrs,
    )
    m = lm_nll(model, splits.test, run.device).double().numpy()
    cell = _monolith_columns(cfg, side, conv, r, plan, lr)
    _monolith_rows(cfg, splits.p, side, plan, m, lrs, scores, add, cell)
    # the best fixed gate's own bootstrap stream, so the other rows stay what they were
    rng_fixed = np.random.default_rng(stable_seed(run.seed, side.budget, conv, r, "boot-fixed"))
    _gate_vs_mono_rows(cfg, side, m, rng_fixed, add, cell)
    _split_rows(splits.p, side, m, add, cell)


def _worst_excess(nll, experts_nll, groups) -> float:
    """SPD's own objective (lam signal ``excess``): max_k [NLL_k(model) - NLL_k(expert k)] over
    the domains' test windows."""
    return max(
        float((nll[groups == k] - experts_nll[k, groups == k]).mean()) for k in np.unique(groups)
    )


def _vertex(p, k) -> str:
    return lam_label(np.eye(p)[k])


def _uniform(p) -> str:
    return lam_label(np.full(p, 1.0 / p))


def _deltas(add, a, b, x, y, groups, experts_nll, rng, n_boot, extra):
    """Rows for a - b per test window: the uniform mixture and every vertex (each with its
    per-window paired s.e.; the uniform one also with a paired bootstrap), the difference of the
    worst vertices, and SPD's endpoint, the difference of the worst-case excesses over each
    domain's expert (each with its paired bootstrap and bootstrap s.e.)."""
    se = per_window_paired_se(x, y)
    boot = paired_bootstrap(x, y, rng=rng, n_boot=n_boot, groups=groups)
    worst = worst_vertex_bootstrap(x, y, groups, rng, n_boot)
    own = experts_nll[groups, np.arange(groups.size)]  # each window's own domain expert
    excess = worst_vertex_bootstrap(x - own, y - own, groups, rng, n_boot)
    method = f"{a}-vs-{b}"
    for metric, v in (
        ("delta_uniform", se.mean),
        ("delta_uniform_se", se.se),
        ("delta_uniform_boot_lo", boot.lo),
        ("delta_uniform_boot_hi", boot.hi),
        ("delta_worst", worst["mean"]),
        ("delta_worst_se", worst["se"]),
        ("delta_worst_boot_lo", worst["lo"]),
        ("delta_worst_boot_hi", worst["hi"]),
        ("delta_worst_excess", excess["mean"]),
        ("delta_worst_excess_se", excess["se"]),
        ("delta_worst_excess_boot_lo", excess["lo"]),
        ("delta_worst_excess_boot_hi", excess["hi"]),
    ):
        add(method, metric, v, **extra)
    p = experts_nll.shape[0]
    for k in range(p):
        vk = per_window_paired_se(x[groups == k], y[groups == k])
        add(method, "delta_vertex", vk.mean, lam=_vertex(p, k), **extra)
        add(method, "delta_vertex_se", vk.se, lam=_vertex(p, k), **extra)


def cell_jobs(config: dict, device: str = "cpu", progress: bool = False) -> list:
    """One `launch.Job` per (triple, expert size, seed)."""
    cfg = ScalingConfig.from_dict(config)
    return [
        Job(
            f"{t}-d{d}-seed{s}",
            run_cell,
            dict(config=config, triple=t, size=d, seed=s, device=device, progress=progress),
        )
        for t in cfg.triples
        for d in cfg.expert_sizes
        for s in cfg.seeds
    ]


def crossover_table(deltas, cells, interaction: bool = False):
    """Per (case, resample, convention, expert_d, budget): the crossover checked against that
    budget's cells (`crossover.checked_crossover`).

    ``deltas``: per-seed gate - monolith rows (value, r, budget, seed and the group columns);
    ``cells``: per-cell intervals over seeds and windows (r, budget, mean, se, lo, hi)."""
    keys = [c for c in ("case", "resample", "convention", "expert_d") if c in deltas]
    out = []
    for key, g in deltas.groupby(keys):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        sel = np.ones(len(cells), bool)
        for k, v in key.items():
            sel &= (cells[k] == v).to_numpy()
        for B in sorted(g["budget"].unique()):
            c = cells[sel & (cells["budget"] == B).to_numpy()].sort_values("r")
            row = {**key, "budget": B}
            try:
                res = checked_crossover(
                    g["value"],
                    g["r"],
                    g["budget"],
                    g["seed"],
                    float(B),
                    c["r"],
                    c["mean"],
                    c["se"],
                    c["lo"],
                    c["hi"],
                    interaction=interaction,
                )
            except ValueError as err:  # a design the fit cannot identify
                out.append({**row, "status": "no fit", "text": str(err)})
                continue
            out.append({**row, **asdict(res)})
    return pd.DataFrame(out)


def projected_flops(config: dict, restore_steps: int = 3) -> dict:
    """Every FLOP a preset will spend (`matching.gate_side_flops` per (triple, size, seed,
    budget), each monolith's training at every grid learning rate and its evaluation passes),
    before running it:
    {"gate_side", "monolith", "total"}. ``restore_steps``: Gauss-Newton steps assumed per Z
    restoration (the quick preset's gates took 1-4). Divide by a throughput measured with
    `modgen-bench bench train --device cuda` (achieved TFLOP/s) for a projected time."""
    cfg = ScalingConfig.from_dict(config)
    p = len(next(iter(cfg.triples.values())))
    reps = len(cfg.triples) * len(cfg.seeds)
    g = cfg.gate
    gate_ne = (
        g["n_layer"]
        * (4 * g["d_model"] ** 2 + 2 * g["d_model"] * g["d_ff"] + 9 * g["d_model"] + g["d_ff"])
        + 2 * g["d_model"]
    )
    gate_side = mono = 0.0
    for size in cfg.expert_sizes:
        e_cfg = expert_config(cfg, size)
        for B in cfg.budgets:
            f = gate_side_flops(
                e_cfg,
                p,
                B,
                cfg.batch_size,
                p * (cfg.n_gate_train + 2 * cfg.n_eval),
                p * (cfg.n_proposal + cfg.n_restore) + cfg.n_z_draws,
                (gate_ne, g["n_layer"], g["d_model"]),
                int(cfg.spd["steps"]),
                int(cfg.spd["per_domain"]),
                p * cfg.n_restore,
                restore_steps if cfg.n_restore else 0,
                2 * (p * cfg.n_eval + cfg.n_z_draws),
            )
            gate_side += reps * f.total
            for conv in cfg.conventions:
                for r in cfg.ratios:
                    plan = match_monolith(
                        conv,
                        e_cfg,
                        p,
                        B,
                        cfg.batch_size,
                        mono_template(cfg),
                        r=r,
                        extra_flops=f.beyond_training,
                    )
                    m_cfg = replace(mono_template(cfg), d_model=plan.d_model, d_ff=plan.d_ff)
                    n_lr = len(cfg.mono_lrs or [cfg.lr])
                    mono += reps * (
                        n_lr * train_flops(m_cfg, plan.steps, p * cfg.batch_size)
                        + causal_pass_flops(m_cfg, p * cfg.n_eval * (n_lr + 1))
                    )
    return {"gate_side": gate_side, "monolith": mono, "total": gate_side + mono}
