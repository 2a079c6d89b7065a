"""One replicate of the real-text study, composed from the stages (PAPER.md section 5).

`run_replicate(config, seed, resample, out_dir, device)` is a launcher job
(`modgen_bench.launch`): it runs stages 1-9 for one (training seed, data resample), keeps every
stage output in ``out_dir`` (a `Store`, so a rerun resumes stage by stage), and returns the tidy
rows and the provenance it measured. Rows carry case, method, metric, value, lam and extra
columns (seed, resample, step, progress); the caller adds the suite name.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..models import count_params
from ..provenance import stable_seed
from ..results import lam_label
from .config import PipelineConfig
from .conflict import ConflictProbe, lm_domain_losses, probe_windows
from .data import load_splits
from .evaluate import expert_nll, gate_nll, lm_nll, per_domain, router_nll
from .experts import train_experts
from .gate import train_gate
from .loglik import cache_experts
from .retrain import matched_d_model, train_retrain
from .router import distil_router
from .sample import sample_gates
from .store import Store

__all__ = ["run_replicate", "Rows"]

LN2 = math.log(2.0)


class Rows:
    """Row sink of one replicate: ``add(case, method, metric, value, lam=None, **extra)``."""

    def __init__(self, seed: int, resample: int):
        self.seed, self.resample, self.rows = seed, resample, []

    def add(self, case, method, metric, value, lam=None, **extra):
        self.rows.append({"case": case, "method": method, "seed": self.seed,
                          "lam": lam if isinstance(lam, str) else lam_label(lam), "metric": metric,
                          "value": float(value), "resample": self.resample, **extra})


def run_replicate(config: dict, seed: int, resample: int, out_dir, device: str = "cpu",
                  progress: bool = False) -> tuple[list, dict]:
    """Stages 1-9 for (seed, resample); returns (rows, {"corpora": provenance})."""
    cfg = PipelineConfig.from_dict(config)
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return _replicate(cfg, seed, resample, Store(out_dir), device, progress)
    finally:
        torch.set_num_threads(threads)


def _replicate(cfg: PipelineConfig, seed, resample, store, dev, progress):
    out = Rows(seed, resample)
    add, sub = out.add, lambda *parts: stable_seed(seed, resample, *parts)
    p, T, names = len(cfg.corpora), cfg.block_size, list(cfg.corpora)

    # 1-3: data, experts, cached log-likelihoods
    splits = load_splits(names, T, cfg.n_gate_train, cfg.n_eval, resample)
    experts = train_experts(splits, cfg.expert, seed, resample, store, dev, progress, cfg.checkpoint_every)
    for name, loss in zip(names, experts.final_loss):
        add("train", f"expert_{name}", "final_loss", loss)
    cache = cache_experts(experts, splits, cfg.n_proposal, sub("proposal"), store, dev)

    # 4: SPD gates (and their gradient conflict)
    gates = {}
    for signal in cfg.signals:
        g = gates[signal] = train_gate(splits, cache, cfg.gate, cfg.spd, signal, seed, resample, store, dev,
                                       progress, cfg.conflict_batch)
        for k in range(p):
            add("lam_star", f"gate_{signal}", f"lam_{names[k]}", g.lam[k])
        add("train", f"gate_{signal}", "mu", g.mu)
        add("train", f"gate_{signal}", "Z_hat_ema", g.history["Z_hat"].iloc[-1])
        steps = int(g.history["step"].iloc[-1])
        for s, v in zip(g.history["step"], g.history["conflict"]):
            add("conflict", f"gate_{signal}", "mean_pairwise_cosine", v, step=int(s), progress=s / steps)

    # 5: matched monolithic retrains (uniform, lam*, oracle mixtures); conflict of the uniform one
    n_gate = count_params(gates["excess"].gate)
    target = p * experts.n_params + n_gate
    d_mono = cfg.mono.d_model or matched_d_model(cfg.mono, T, target)
    mixtures = {"mono_uniform": np.full(p, 1.0 / p), "mono_lamstar": gates["excess"].lam}
    mixtures.update({f"oracle_{lam_label(cfg.mixtures[i])}": np.asarray(cfg.mixtures[i], float) for i in cfg.oracle})
    probe, _ = probe_windows(splits.pool, cache.pool, cfg.conflict_batch)
    monos = {}
    for method, lam in mixtures.items():
        hook = (ConflictProbe(lambda m: lm_domain_losses(m, probe, dev), cfg.conflict_every)
                if method == "mono_uniform" else None)
        r = train_retrain(splits, cfg.mono, d_mono, lam, method, seed, resample, store, dev, progress,
                          cfg.checkpoint_every, hook)
        add("train", method, "final_loss", r.final_loss)
        for s, v in r.conflict:
            add("conflict", method, "mean_pairwise_cosine", v, step=s, progress=s / cfg.mono.steps)
        monos[method] = r.model
    for method, n in [("experts_plus_gate", target), ("expert", experts.n_params), ("gate", n_gate),
                      ("mono", count_params(monos["mono_uniform"]))]:
        add("params", method, "n_params", n)
    add("params", "mono", "d_model", d_mono)

    # 7: sampling (SIR per gate, rejection from the excess gate); 6: the router distilled on it
    sampled = sample_gates(experts, {s: g.gate for s, g in gates.items()}, cfg.n_draws,
                           lambda stage: sub("sampling", stage), store, dev)
    for signal, res in sampled.sir.items():
        for metric, v in [("Z_hat", res.Z_hat), ("Z_lo", res.Z_ci[0]), ("Z_hi", res.Z_ci[1])]:
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
    per = {f"gate_{s}": per_domain(gate_nll(g.gate, test, test_e, dev), p) for s, g in gates.items()}
    per.update({f"gate_{s}_logZ": per[f"gate_{s}"] + math.log(sampled.sir[s].Z_hat) / (T - 1) for s in gates})
    per.update({name: per_domain(lm_nll(mo, test, dev), p) for name, mo in monos.items()})
    per["router"] = per_domain(router_nll(router.router, test, cache.test_tok, dev), p)
    per.update({f"expert_{n}": per_domain(expert_nll(test_e, k, T), p) for k, n in enumerate(names)})
    for method, nll in per.items():
        if method.startswith("oracle_"):
            lams = [np.asarray([float(v) for v in method[len("oracle_"):].split(",")])]
        else:
            lams = [np.asarray(lam, float) for lam in cfg.mixtures]
        for lam in lams:
            add("test", method, "nll_per_token", float(lam @ nll), lam=lam)
            add("test", method, "bits_per_byte", float(lam @ nll) / LN2, lam=lam)
    val = {f"gate_{s}": gate_nll(g.gate, splits.val, cache.val, dev) for s, g in gates.items()}
    val.update({name: lm_nll(mo, splits.val, dev) for name, mo in monos.items()})
    for method, nll in val.items():
        for k, v in enumerate(per_domain(nll, p)):
            add("val", method, "nll_per_token", v, lam=np.eye(p)[k])
    return out.rows, {"corpora": {name: {f"resample{resample}": info} for name, info in splits.provenance.items()}}
