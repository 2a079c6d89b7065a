"""One replicate of the real-text study, composed from the stages (PAPER.md section 5).

`run_replicate(config, seed, resample, out_dir, device)` is a launcher job
(`modgen_bench.launch`): it runs stages 1-9 for one (training seed, data resample), keeps every
stage output in ``out_dir`` (a `Store`, so a rerun resumes stage by stage), and returns the tidy
rows and the provenance it measured. Rows carry case, method, metric, value, lam and extra
columns (seed, resample, step, progress, match: the monolith's matching convention); the caller
adds the suite name.

Gates are graded as proper likelihoods only: ``gate_<signal>_logZ`` divides pi_g by Z_hat
estimated on fresh draws from q (stage 7's pool, independent of SPD's proposal draws), its 95%
interval carried into the NLL as ``nll_per_token_lo/_hi`` = NLL + log Z_lo / (T-1), NLL +
log Z_hi / (T-1). Baselines in every table: ``const_gate`` (the constant 1/p gate, Z = 1
exactly) and ``bayes_router`` (the free Bayes-posterior causal router). Case ``paired`` holds
per-window paired differences a - b per mixture with their per-window s.e. (domains' s.e.
combined with the mixture's weights); case ``routing_split`` splits gate - monolith on each
domain into routing proper, the shared domain prior and the expert deficit
(`evaluate.routing_split`).

Each section below runs one or two stages and writes their rows; `_replicate` only chains them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from .combiners.stage import add_combiners, check_combiners, combiner_context
from .experts import BYTES_HASH
from .launch import Job, LaunchSpec, launch_into
from .matching import closed_form_counts, match_monolith, train_flops
from .models import count_params, lm_config
from .pipeline.config import PipelineConfig
from .pipeline.conflict import ConflictProbe, lm_domain_losses, probe_windows
from .pipeline.context import StageRun
from .pipeline.data import job_info
from .pipeline.evaluate import (
    bayes_router_nll,
    const_gate_nll,
    expert_nll,
    gate_nll,
    lm_nll,
    per_domain,
    router_nll,
    routing_split,
)
from .pipeline.experts import experts_and_splits
from .pipeline.gate import train_gate
from .pipeline.loglik import cache_experts
from .pipeline.retrain import train_retrain
from .pipeline.router import distil_router
from .pipeline.sample import sample_gates
from .pipeline.store import Store
from .results import lam_label
from .stats import paired_bootstrap, per_window_paired_se
from .threads import cpu_threads

__all__ = ["run_replicate", "launch_replicates", "Rows", "monolith_plan", "PAIRS"]

#: paired comparisons a - b of case "paired" (per-window differences on the test windows)
PAIRS = [
    ("gate_excess_logZ", "mono_uniform"),
    ("const_gate", "mono_uniform"),
    ("bayes_router", "mono_uniform"),
    ("gate_excess_logZ", "const_gate"),
    ("gate_excess_logZ", "bayes_router"),
    ("router", "gate_excess_logZ"),
]

LN2 = math.log(2.0)


class Rows:
    """Row sink of one replicate: ``add(case, method, metric, value, lam=None, **extra)``."""

    def __init__(self, seed: int, resample: int, match: str = "params"):
        self.seed, self.resample, self.match, self.rows = seed, resample, match, []

    def add(self, case, method, metric, value, lam=None, **extra):
        self.rows.append(
            {
                "case": case,
                "method": method,
                "seed": self.seed,
                "lam": lam if isinstance(lam, str) else lam_label(lam),
                "metric": metric,
                "value": float(value),
                "resample": self.resample,
                "match": self.match,
                **extra,
            }
        )


def monolith_plan(cfg: PipelineConfig, T: int, p: int, n_gate: int, vocab_size: int, family=None):
    """(mono LMTrain, d_model, ratios) under ``cfg.match`` (`matching.match_monolith`).

    ``params`` (the suite's convention so far, the default): total parameters = experts' + gate's,
    the monolith trains the preset's mono.steps on mono.batch_size windows per domain.
    ``nonembedding``/``tokens``/``compute``: width from the target non-embedding ratio
    ``cfg.ratio``, steps and batch from the convention (batch = the experts' per domain). A
    preset's fixed mono.d_model overrides the width. The ratios are computed from the monolith
    actually trained: r (non-embedding, monolith / experts' combined, gate excluded), params
    (total, monolith / (experts + gate)), compute (training FLOPs, Kaplan et al. 2020) and
    tokens (monolith / experts' combined). Parameters are counted in the experts' ``family``
    (`param_counts`: closed forms for the built-in LMs, the model itself for a Hugging Face
    family, whose head may be tied) over ``vocab_size`` ids; FLOPs use the closed forms (for
    loaded experts, ``cfg.expert`` should give their sizes)."""
    e, m, V = cfg.expert, cfg.mono, vocab_size
    counts = family.param_counts if family is not None else closed_form_counts
    e_cfg = lm_config(e, V, T)
    template = lm_config(m, V, T, d_model=m.n_head)
    plan = match_monolith(
        cfg.match,
        e_cfg,
        p,
        e.steps,
        e.batch_size,
        template,
        r=cfg.ratio,
        gate_params=n_gate,
        scale_ff=m.d_ff == 0,
        counts=counts,
    )
    d = m.d_model or plan.d_model
    spec = m if cfg.match == "params" else replace(m, steps=plan.steps, batch_size=e.batch_size)
    mono_cfg = lm_config(m, V, T, d)
    experts_flops = p * train_flops(e_cfg, e.steps, e.batch_size)
    (total_e, ne_e), (total_m, ne_m) = counts(e_cfg), counts(mono_cfg)
    ratios = {
        "r_nonembedding": ne_m / (p * ne_e),
        "params_ratio": total_m / (p * total_e + n_gate),
        "compute_ratio": train_flops(mono_cfg, spec.steps, p * spec.batch_size) / experts_flops,
        "token_ratio": spec.steps * spec.batch_size / (e.steps * e.batch_size),
    }
    return spec, d, ratios


def load_config(config: dict) -> PipelineConfig:
    """A preset's checked `PipelineConfig`, its combiners included (they are checked here, above
    the stages they use, so the config module never imports them)."""
    cfg = PipelineConfig.from_dict(config)
    check_combiners(cfg.combiners)
    return cfg


def run_replicate(
    config: dict, seed: int, resample: int, out_dir, device: str = "cpu", progress: bool = False
) -> tuple[list, dict]:
    """Stages 1-9 for (seed, resample); returns (rows, {"corpora": provenance})."""
    cfg = load_config(config)
    run = StageRun(Store(out_dir), seed, resample, device, progress, cfg.checkpoint_every)
    with cpu_threads(cfg.cpu_threads, device):
        return _replicate(cfg, run)


def launch_replicates(ctx, config: dict) -> PipelineConfig:
    """Every replicate of ``config`` as a launcher job (each seed on data resample 0, then each
    resample with seeds[0]), run into ``ctx`` (rows in job order whatever launcher ran them);
    records the corpus names and the replicates in ``ctx.info``. Returns the checked config."""
    cfg = load_config(config)
    spec = getattr(ctx, "launch", None) or LaunchSpec()
    progress = spec.launcher == "serial"
    jobs = [
        Job(
            f"seed{s}-resample{r}",
            run_replicate,
            dict(config=config, seed=s, resample=r, device=ctx.device, progress=progress),
        )
        for s, r in cfg.replicates()
    ]
    ctx.info["corpus_names"] = list(cfg.corpora)
    ctx.info["replicates"] = [{"seed": s, "resample": r} for s, r in cfg.replicates()]
    launch_into(ctx, jobs, spec)
    return cfg


@dataclass
class _Monoliths:
    """Stage 5's outputs: the monolith's spec and width under ``cfg.match``, its ratios, and the
    trained models by method."""

    spec: object
    d_model: int
    ratios: dict
    models: dict
    n_gate: int


def _replicate(cfg: PipelineConfig, run: StageRun):
    out = Rows(run.seed, run.resample, cfg.match)
    add, p = out.add, len(cfg.corpora)
    splits, experts, cache = _experts_section(cfg, run, add)
    gates = {signal: _gate_section(cfg, run, splits, cache, signal, add) for signal in cfg.signals}
    monos = _monolith_section(cfg, run, splits, experts, cache, gates, add)
    sampled, router = _sampling_section(cfg, run, experts, gates, add)
    win, zband = _test_windows(cfg, run, splits, cache, gates, monos.models, sampled, router)
    ctx = combiner_context(
        cfg,
        splits=splits,
        experts=experts,
        cache=cache,
        gates=gates,
        monos=monos.models,
        mono_spec=monos.spec,
        d_mono=monos.d_model,
        run=run,
        n_gate=monos.n_gate,
    )
    # the registered rivals (`modgen_bench.combiners`) join the test windows
    add_combiners(
        add,
        win,
        zband,
        ctx,
        cfg.combiners,
        monos.ratios,
        count_params(router.router),
        cfg.mixtures,
        set(PAIRS),
    )
    _test_rows(add, win, zband, cfg, splits)
    _paired_rows(add, win, p, cfg.mixtures, run.sub("paired-bootstrap"))
    _routing_split_rows(add, win, p, list(cfg.corpora))
    _val_rows(add, run, splits, cache, gates, monos.models, p)
    return out.rows, job_info(splits, run.resample)


def _experts_section(cfg: PipelineConfig, run: StageRun, add):
    """Stages 1-3: data, experts (their final losses and, when not trained, their sources) and
    the cached log-likelihoods; (splits, experts, cache)."""
    splits, experts = experts_and_splits(cfg, run)
    for name, loss in zip(cfg.corpora, experts.final_loss, strict=True):
        if math.isfinite(loss):
            add("train", f"expert_{name}", "final_loss", loss)
    if cfg.experts_from != "train":
        _source_rows(add, experts)
    cache = cache_experts(
        experts,
        splits,
        run,
        n_proposal=cfg.n_proposal,
        seed=run.sub("proposal"),
        n_restore=cfg.n_restore,
    )
    return splits, experts, cache


def _gate_section(cfg: PipelineConfig, run: StageRun, splits, cache, signal: str, add):
    """Stage 4 for one lam signal: the SPD gate, its lam*, mu, Z restoration and the gradient
    conflict over training."""
    g = train_gate(
        splits,
        cache,
        run,
        spec=cfg.gate,
        spd=cfg.spd,
        signal=signal,
        conflict_batch=cfg.conflict_batch,
    )
    method = f"gate_{signal}"
    for name, lam_k in zip(cfg.corpora, g.lam, strict=True):
        add("lam_star", method, f"lam_{name}", lam_k)
    add("train", method, "mu", g.mu)
    add("train", method, "Z_hat_ema", g.history["Z_hat"].iloc[-1])
    for name, v in (g.restoration or {}).items():  # Z = 1 restored after SPD (stage 4)
        add("train", method, f"Z_restore_{name}", v)
    steps = int(g.history["step"].iloc[-1])
    for s, v in zip(g.history["step"], g.history["conflict"], strict=True):
        add("conflict", method, "mean_pairwise_cosine", v, step=int(s), progress=s / steps)
    return g


def _monolith_section(
    cfg: PipelineConfig, run: StageRun, splits, experts, cache, gates, add
) -> _Monoliths:
    """Stage 5: matched monolithic retrains on the uniform, lam* and oracle mixtures (the uniform
    one probed for gradient conflict), and the parameter table."""
    p, T = splits.p, cfg.block_size
    n_gate = count_params(gates["excess"].gate)
    spec, d, ratios = monolith_plan(cfg, T, p, n_gate, experts.vocab_size, experts.family)
    mixtures = {"mono_uniform": np.full(p, 1.0 / p), "mono_lamstar": gates["excess"].lam}
    mixtures.update(
        {
            f"oracle_{lam_label(cfg.mixtures[i])}": np.asarray(cfg.mixtures[i], float)
            for i in cfg.oracle
        }
    )
    probe, _ = probe_windows(splits.pool, cache.pool, cfg.conflict_batch)
    models = {}
    for method, lam in mixtures.items():
        hook = (
            ConflictProbe(lambda m: lm_domain_losses(m, probe, run.device), cfg.conflict_every)
            if method == "mono_uniform"
            else None
        )
        r = train_retrain(
            splits,
            run,
            spec=spec,
            d_model=d,
            lam=lam,
            method=method,
            probe=hook,
            family=experts.family,
        )
        add("train", method, "final_loss", r.final_loss)
        for s, v in r.conflict:
            add("conflict", method, "mean_pairwise_cosine", v, step=s, progress=s / spec.steps)
        models[method] = r.model
    for method, n in [
        ("experts_plus_gate", p * experts.n_params + n_gate),
        ("expert", experts.n_params),
        ("gate", n_gate),
        ("mono", count_params(models["mono_uniform"])),
    ]:
        add("params", method, "n_params", n)
    add("params", "mono", "d_model", d)
    add("params", "mono", "steps", spec.steps)
    for metric, v in ratios.items():
        add("params", "mono", metric, v)
    return _Monoliths(spec, d, ratios, models, n_gate)


def _sampling_section(cfg: PipelineConfig, run: StageRun, experts, gates, add):
    """Stage 7 (SIR per gate, rejection from the excess gate), then stage 6, the router distilled
    on the rejection sample; (sampled, router)."""
    sampled = sample_gates(experts, {s: g.gate for s, g in gates.items()}, run, n_draws=cfg.n_draws)
    for signal, res in sampled.sir.items():
        for metric, v in [
            ("Z_hat", res.Z_hat),
            ("Z_lo", res.Z_ci[0]),
            ("Z_hi", res.Z_ci[1]),
            ("Z_plain", res.Z_plain),
        ]:
            add("Z", f"gate_{signal}", metric, v)
        add("sampling", f"gate_{signal}", "sir_ess_fraction", res.ess_fraction)
    rej = sampled.rejection
    for metric, v in [
        ("rejection_acceptance", rej.acceptance),
        ("rejection_acceptance_lo", rej.acceptance_ci[0]),
        ("rejection_acceptance_hi", rej.acceptance_ci[1]),
        ("rejection_bound_1_over_p", rej.bound),
    ]:
        add("sampling", "gate_excess", metric, v)
    router = distil_router(
        experts,
        rej.samples,
        run,
        spec=cfg.gate,
        train=cfg.router,
        upstream=f"{gates['excess'].key}-{cfg.n_draws}",
    )
    add("train", "router", "final_loss", router.final_loss)
    return sampled, router


def _test_windows(cfg: PipelineConfig, run: StageRun, splits, cache, gates, monos, sampled, router):
    """Stage 8's per-window test NLLs per method (gates also divided by Z_hat: proper
    likelihoods), and each graded gate's log Z band (log Z_lo - log Z_hat, log Z_hi - log Z_hat);
    (win, zband)."""
    test, test_e, dev, T = splits.test, cache.test, run.device, cfg.block_size
    win = {f"gate_{s}": gate_nll(g.gate, test, test_e, dev).double() for s, g in gates.items()}
    zband = {}
    for s in gates:  # proper likelihoods: / Z_hat on fresh draws from q
        z, (z_lo, z_hi) = sampled.sir[s].Z_hat, sampled.sir[s].Z_ci
        win[f"gate_{s}_logZ"] = win[f"gate_{s}"] + math.log(z) / (T - 1)
        zband[f"gate_{s}_logZ"] = (
            math.log(max(z_lo, 1e-300)) - math.log(z),
            math.log(z_hi) - math.log(z),
        )
    win.update({name: lm_nll(mo, test, dev).double() for name, mo in monos.items()})
    win["router"] = router_nll(router.router, test, cache.test_tok, dev).double()
    win["const_gate"] = torch.as_tensor(const_gate_nll(test_e, T))
    win["bayes_router"] = bayes_router_nll(cache.test_tok)
    win.update(
        {f"expert_{n}": expert_nll(test_e, k, T).double() for k, n in enumerate(cfg.corpora)}
    )
    return win, zband


def _test_rows(add, win: dict, zband: dict, cfg: PipelineConfig, splits) -> None:
    """Case "test": every method's NLL per token (and bits per byte or token) on each test
    mixture (an oracle monolith on its own mixture only), with Z's band where graded."""
    p, T = splits.p, cfg.block_size
    per_unit = "bits_per_byte" if splits.tokenizer_hash == BYTES_HASH else "bits_per_token"
    for method, v in win.items():
        nll = per_domain(v, p)
        if method.startswith("oracle_"):
            lams = [np.asarray([float(x) for x in method[len("oracle_") :].split(",")])]
        else:
            lams = [np.asarray(lam, float) for lam in cfg.mixtures]
        for lam in lams:
            add("test", method, "nll_per_token", float(lam @ nll), lam=lam)
            add("test", method, per_unit, float(lam @ nll) / LN2, lam=lam)
            if method in zband:  # Z's 95% interval carried into the NLL
                lo, hi = zband[method]
                add("test", method, "nll_per_token_lo", float(lam @ nll) + lo / (T - 1), lam=lam)
                add("test", method, "nll_per_token_hi", float(lam @ nll) + hi / (T - 1), lam=lam)


def _routing_split_rows(add, win: dict, p: int, names: list) -> None:
    """Case "routing_split" on each domain's windows: the shared domain-prior cost kept apart
    from routing proper and the expert deficit (`evaluate.routing_split`)."""
    groups = np.repeat(np.arange(p), len(win["const_gate"]) // p)
    for k in range(p):
        w = groups == k
        parts = routing_split(
            win["gate_excess_logZ"].numpy()[w],
            win["const_gate"].numpy()[w],
            win[f"expert_{names[k]}"].numpy()[w],
            win["mono_uniform"].numpy()[w],
        )
        for metric, v in parts.items():
            add("routing_split", "gate_excess_logZ", metric, v, lam=np.eye(p)[k])


def _val_rows(add, run: StageRun, splits, cache, gates, monos, p: int) -> None:
    """Case "val": per-domain NLL per token of the gates (unnormalised) and the monoliths on the
    validation windows."""
    val = {
        f"gate_{s}": gate_nll(g.gate, splits.val, cache.val, run.device) for s, g in gates.items()
    }
    val.update({name: lm_nll(mo, splits.val, run.device) for name, mo in monos.items()})
    for method, nll in val.items():
        for k, v in enumerate(per_domain(nll, p)):
            add("val", method, "nll_per_token", v, lam=np.eye(p)[k])


def _paired_rows(add, win: dict, p: int, mixtures, seed: int) -> None:
    """Case "paired": per mixture lam, a - b of `PAIRS` from the per-window NLLs (domain by domain):
    delta = sum_k lam_k mean_k(a - b) with the per-window paired s.e. combined over domains,
    se = sqrt(sum_k lam_k^2 se_k^2) (`stats.per_window_paired_se` per domain); on the uniform
    mixture also the paired bootstrap interval over windows, resampled within domains
    (`stats.paired_bootstrap`)."""
    rng = np.random.default_rng(seed)
    for a, b in PAIRS:
        if a not in win or b not in win:
            continue
        x, y = win[a].numpy().reshape(p, -1), win[b].numpy().reshape(p, -1)
        per = [per_window_paired_se(x[k], y[k]) for k in range(p)]
        mean_k, se_k = np.array([iv.mean for iv in per]), np.array([iv.se for iv in per])
        method = f"{a}-vs-{b}"
        for lam in mixtures:
            lam = np.asarray(lam, float)
            add("paired", method, "delta", float(lam @ mean_k), lam=lam)
            add("paired", method, "delta_window_se", float(np.sqrt(lam**2 @ se_k**2)), lam=lam)
        boot = paired_bootstrap(
            x.ravel(), y.ravel(), rng=rng, n_boot=1000, groups=np.repeat(np.arange(p), x.shape[1])
        )
        uniform = np.full(p, 1.0 / p)
        add("paired", method, "delta_boot_lo", boot.lo, lam=uniform)
        add("paired", method, "delta_boot_hi", boot.hi, lam=uniform)


def _source_rows(add, experts) -> None:
    """Case "experts": where each expert came from (1 = yes), for the report's provenance table."""
    for src in experts.sources:
        method = f"expert_{src['expert']}"
        add("experts", method, f"source_{src['source']}", 1.0)
        if src.get("format") == "safetensors":
            add("experts", method, "saved_safetensors", 1.0)
        if "files" in src:
            add("experts", method, "n_files", len(src["files"]))
    add("experts", "expert", "vocab_size", experts.vocab_size)
