"""One replicate of the real-text study, composed from the stages (PAPER.md section 5).

`run_replicate(config, seed, resample, out_dir, device)` is a launcher job
(`modgen_bench.launch`): it runs stages 1-9 for one (training seed, data resample), keeps every
stage output in ``out_dir`` (a `Store`, so a rerun resumes stage by stage), and returns the tidy
rows and the provenance it measured. Rows carry case, method, metric, value, lam and extra
columns (seed, resample, step, progress, match: the monolith's matching convention); the caller
adds the suite name.

Gates are graded as proper likelihoods only (issue 13, item 3): ``gate_<signal>_logZ`` divides
pi_g by Z_hat estimated on fresh draws from q (stage 7's pool, independent of SPD's proposal
draws), its 95% interval carried into the NLL as ``nll_per_token_lo/_hi`` = NLL +
log Z_lo / (T-1), NLL + log Z_hi / (T-1). Baselines in every table (item 4): ``const_gate`` (the
constant 1/p gate, Z = 1 exactly) and ``bayes_router`` (the free Bayes-posterior causal router).
Case ``paired`` holds per-window paired differences a - b per mixture with their per-window
s.e. (domains' s.e. combined with the mixture's weights; item 6); case ``routing_split`` splits
gate - monolith on each domain into routing proper, the shared domain prior and the expert
deficit (`evaluate.routing_split`, item 8).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from .combiners.stage import add_combiners, check_combiners, combiner_context
from .data.corpora import VOCAB_SIZE
from .experts import BYTES_HASH
from .matching import closed_form_counts, match_monolith, train_flops
from .models import LMConfig, count_params
from .pipeline.config import PipelineConfig
from .pipeline.conflict import ConflictProbe, lm_domain_losses, probe_windows
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
from .provenance import stable_seed
from .results import lam_label
from .stats import paired_bootstrap, per_window_paired_se
from .threads import cpu_threads

__all__ = ["run_replicate", "Rows", "monolith_plan", "PAIRS"]

#: paired comparisons a - b of case "paired" (per-window differences on the test windows)
PAIRS = [("gate_excess_logZ", "mono_uniform"), ("const_gate", "mono_uniform"),
         ("bayes_router", "mono_uniform"), ("gate_excess_logZ", "const_gate"),
         ("gate_excess_logZ", "bayes_router"), ("router", "gate_excess_logZ")]

LN2 = math.log(2.0)


class Rows:
    """Row sink of one replicate: ``add(case, method, metric, value, lam=None, **extra)``."""

    def __init__(self, seed: int, resample: int, match: str = "params"):
        self.seed, self.resample, self.match, self.rows = seed, resample, match, []

    def add(self, case, method, metric, value, lam=None, **extra):
        self.rows.append({"case": case, "method": method, "seed": self.seed,
                          "lam": lam if isinstance(lam, str) else lam_label(lam), "metric": metric,
                          "value": float(value), "resample": self.resample, "match": self.match, **extra})


def monolith_plan(cfg: PipelineConfig, T: int, p: int, n_gate: int, vocab_size: int = VOCAB_SIZE,
                  family=None):
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
    e_cfg = LMConfig(V, T, e.n_layer, e.n_head, e.d_model, e.d_ff or 4 * e.d_model)
    template = LMConfig(V, T, m.n_layer, m.n_head, m.n_head, m.d_ff or 4 * m.n_head)
    plan = match_monolith(cfg.match, e_cfg, p, e.steps, e.batch_size, template, r=cfg.ratio,
                          gate_params=n_gate, scale_ff=m.d_ff == 0, counts=counts)
    d = m.d_model or plan.d_model
    spec = m if cfg.match == "params" else replace(m, steps=plan.steps, batch_size=e.batch_size)
    mono_cfg = LMConfig(V, T, m.n_layer, m.n_head, d, m.d_ff or 4 * d)
    experts_flops = p * train_flops(e_cfg, e.steps, e.batch_size)
    (total_e, ne_e), (total_m, ne_m) = counts(e_cfg), counts(mono_cfg)
    ratios = {"r_nonembedding": ne_m / (p * ne_e),
              "params_ratio": total_m / (p * total_e + n_gate),
              "compute_ratio": train_flops(mono_cfg, spec.steps, p * spec.batch_size) / experts_flops,
              "token_ratio": spec.steps * spec.batch_size / (e.steps * e.batch_size)}
    return spec, d, ratios


def load_config(config: dict) -> PipelineConfig:
    """A preset's checked `PipelineConfig`, its combiners included (they are checked here, above
    the stages they use, so the config module never imports them)."""
    cfg = PipelineConfig.from_dict(config)
    check_combiners(cfg.combiners)
    return cfg


def run_replicate(config: dict, seed: int, resample: int, out_dir, device: str = "cpu",
                  progress: bool = False) -> tuple[list, dict]:
    """Stages 1-9 for (seed, resample); returns (rows, {"corpora": provenance})."""
    cfg = load_config(config)
    with cpu_threads(cfg.cpu_threads, device):
        return _replicate(cfg, seed, resample, Store(out_dir), device, progress)


def _replicate(cfg: PipelineConfig, seed, resample, store, dev, progress):
    out = Rows(seed, resample, cfg.match)
    add, sub = out.add, lambda *parts: stable_seed(seed, resample, *parts)
    p, T, names = len(cfg.corpora), cfg.block_size, list(cfg.corpora)

    # 1-3: data, experts, cached log-likelihoods
    splits, experts = experts_and_splits(cfg, seed, resample, store, dev, progress)
    for name, loss in zip(names, experts.final_loss):
        if math.isfinite(loss):
            add("train", f"expert_{name}", "final_loss", loss)
    if cfg.experts_from != "train":
        _source_rows(add, experts)
    cache = cache_experts(experts, splits, cfg.n_proposal, sub("proposal"), store, dev,
                          n_restore=cfg.n_restore)

    # 4: SPD gates (and their gradient conflict)
    gates = {}
    for signal in cfg.signals:
        g = gates[signal] = train_gate(splits, cache, cfg.gate, cfg.spd, signal, seed, resample, store, dev,
                                       progress, cfg.conflict_batch)
        for k in range(p):
            add("lam_star", f"gate_{signal}", f"lam_{names[k]}", g.lam[k])
        add("train", f"gate_{signal}", "mu", g.mu)
        add("train", f"gate_{signal}", "Z_hat_ema", g.history["Z_hat"].iloc[-1])
        for name, v in (g.restoration or {}).items():        # Z = 1 restored after SPD (stage 4)
            add("train", f"gate_{signal}", f"Z_restore_{name}", v)
        steps = int(g.history["step"].iloc[-1])
        for s, v in zip(g.history["step"], g.history["conflict"]):
            add("conflict", f"gate_{signal}", "mean_pairwise_cosine", v, step=int(s), progress=s / steps)

    # 5: matched monolithic retrains (uniform, lam*, oracle mixtures); conflict of the uniform one
    n_gate = count_params(gates["excess"].gate)
    target = p * experts.n_params + n_gate
    mono_spec, d_mono, ratios = monolith_plan(cfg, T, p, n_gate, experts.vocab_size, experts.family)
    mixtures = {"mono_uniform": np.full(p, 1.0 / p), "mono_lamstar": gates["excess"].lam}
    mixtures.update({f"oracle_{lam_label(cfg.mixtures[i])}": np.asarray(cfg.mixtures[i], float) for i in cfg.oracle})
    probe, _ = probe_windows(splits.pool, cache.pool, cfg.conflict_batch)
    monos = {}
    for method, lam in mixtures.items():
        hook = (ConflictProbe(lambda m: lm_domain_losses(m, probe, dev), cfg.conflict_every)
                if method == "mono_uniform" else None)
        r = train_retrain(splits, mono_spec, d_mono, lam, method, seed, resample, store, dev, progress,
                          cfg.checkpoint_every, hook, experts.family)
        add("train", method, "final_loss", r.final_loss)
        for s, v in r.conflict:
            add("conflict", method, "mean_pairwise_cosine", v, step=s, progress=s / mono_spec.steps)
        monos[method] = r.model
    for method, n in [("experts_plus_gate", target), ("expert", experts.n_params), ("gate", n_gate),
                      ("mono", count_params(monos["mono_uniform"]))]:
        add("params", method, "n_params", n)
    add("params", "mono", "d_model", d_mono)
    add("params", "mono", "steps", mono_spec.steps)
    for metric, v in ratios.items():
        add("params", "mono", metric, v)

    # 7: sampling (SIR per gate, rejection from the excess gate); 6: the router distilled on it
    sampled = sample_gates(experts, {s: g.gate for s, g in gates.items()}, cfg.n_draws,
                           lambda stage: sub("sampling", stage), store, dev)
    for signal, res in sampled.sir.items():
        for metric, v in [("Z_hat", res.Z_hat), ("Z_lo", res.Z_ci[0]), ("Z_hi", res.Z_ci[1]),
                          ("Z_plain", res.Z_plain)]:
            add("Z", f"gate_{signal}", metric, v)
        add("sampling", f"gate_{signal}", "sir_ess_fraction", res.ess_fraction)
    rej = sampled.rejection
    for metric, v in [("rejection_acceptance", rej.acceptance), ("rejection_acceptance_lo", rej.acceptance_ci[0]),
                      ("rejection_acceptance_hi", rej.acceptance_ci[1]), ("rejection_bound_1_over_p", rej.bound)]:
        add("sampling", "gate_excess", metric, v)
    router = distil_router(experts, rej.samples, cfg.gate, cfg.router, seed, resample,
                           store, f"{gates['excess'].key}-{cfg.n_draws}", dev, progress)
    add("train", "router", "final_loss", router.final_loss)

    # 8: evaluation on the test mixtures and the validation vertices
    test, test_e = splits.test, cache.test
    win = {f"gate_{s}": gate_nll(g.gate, test, test_e, dev).double() for s, g in gates.items()}
    zband = {}
    for s in gates:                       # proper likelihoods: / Z_hat on fresh draws from q
        z, (z_lo, z_hi) = sampled.sir[s].Z_hat, sampled.sir[s].Z_ci
        win[f"gate_{s}_logZ"] = win[f"gate_{s}"] + math.log(z) / (T - 1)
        zband[f"gate_{s}_logZ"] = (math.log(max(z_lo, 1e-300)) - math.log(z), math.log(z_hi) - math.log(z))
    win.update({name: lm_nll(mo, test, dev).double() for name, mo in monos.items()})
    win["router"] = router_nll(router.router, test, cache.test_tok, dev).double()
    win["const_gate"] = torch.as_tensor(const_gate_nll(test_e, T))
    win["bayes_router"] = bayes_router_nll(cache.test_tok)
    win.update({f"expert_{n}": expert_nll(test_e, k, T).double() for k, n in enumerate(names)})
    ctx = combiner_context(cfg, splits=splits, experts=experts, cache=cache, gates=gates, monos=monos,
                           mono_spec=mono_spec, d_mono=d_mono, store=store, device=dev, seed=seed,
                           resample=resample, sub=sub, n_gate=n_gate, progress=progress)
    add_combiners(add, win, zband, ctx, cfg.combiners, ratios, count_params(router.router), cfg.mixtures,
                  set(PAIRS))          # the registered rivals (`modgen_bench.combiners`)
    per = {method: per_domain(v, p) for method, v in win.items()}
    per_unit = "bits_per_byte" if splits.tokenizer_hash == BYTES_HASH else "bits_per_token"
    for method, nll in per.items():
        if method.startswith("oracle_"):
            lams = [np.asarray([float(v) for v in method[len("oracle_"):].split(",")])]
        else:
            lams = [np.asarray(lam, float) for lam in cfg.mixtures]
        for lam in lams:
            add("test", method, "nll_per_token", float(lam @ nll), lam=lam)
            add("test", method, per_unit, float(lam @ nll) / LN2, lam=lam)
            if method in zband:           # Z's 95% interval carried into the NLL
                lo, hi = zband[method]
                add("test", method, "nll_per_token_lo", float(lam @ nll) + lo / (T - 1), lam=lam)
                add("test", method, "nll_per_token_hi", float(lam @ nll) + hi / (T - 1), lam=lam)
    _paired_rows(add, win, p, cfg.mixtures, sub("paired-bootstrap"))
    groups = np.repeat(np.arange(p), len(win["const_gate"]) // p)
    for k in range(p):                    # item 8: the shared domain-prior cost kept apart
        w = groups == k
        parts = routing_split(win["gate_excess_logZ"].numpy()[w], win["const_gate"].numpy()[w],
                              win[f"expert_{names[k]}"].numpy()[w], win["mono_uniform"].numpy()[w])
        for metric, v in parts.items():
            add("routing_split", "gate_excess_logZ", metric, v, lam=np.eye(p)[k])
    val = {f"gate_{s}": gate_nll(g.gate, splits.val, cache.val, dev) for s, g in gates.items()}
    val.update({name: lm_nll(mo, splits.val, dev) for name, mo in monos.items()})
    for method, nll in val.items():
        for k, v in enumerate(per_domain(nll, p)):
            add("val", method, "nll_per_token", v, lam=np.eye(p)[k])
    return out.rows, job_info(splits, resample)


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
            add("paired", method, "delta_window_se", float(np.sqrt(lam ** 2 @ se_k ** 2)), lam=lam)
        boot = paired_bootstrap(x.ravel(), y.ravel(), rng=rng, n_boot=1000,
                                groups=np.repeat(np.arange(p), x.shape[1]))
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
