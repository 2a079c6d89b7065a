"""Monoliths trained for the worst case: Group DRO online weights and DoReMi's learned weights.

Both are the same `TransformerLM` as ``mono_uniform`` (width and steps from the same matching
convention, `replicate.monolith_plan`) on the same batches with equal blocks per domain;
only the per-domain weights of the loss sum_k lam[k] NLL_k change:

- ``mono_groupdro`` (Sagawa et al. 2020, Alg. 1): lam moves online, lam <- lam exp(eta NLL_k) /
  norm after every step (EG on the raw per-domain loss of the batch, step ``eta``, default the
  paper's 0.01), and the model descends the lam-weighted loss.
- ``mono_doremi`` (Xie et al. 2023, Alg. 1): a reference model (``mono_uniform``: the uniform
  mixture is DoReMi's reference weighting) and a proxy of the same size trained against the
  excess loss max(NLL_k(proxy) - NLL_k(reference), 0) (clipped per domain mean of the batch;
  DoReMi clips per token before averaging) with DoReMi's weight rule
  (`algorithms.lam_rules.DoReMi`: EG step 1, smoothing 1e-3, averaged weights); then a fresh
  monolith retrained on the averaged weights (`pipeline.retrain.train_retrain`). Its compute
  counts all three trainings.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..algorithms.lam_rules import make_lam_rule
from ..matching import train_flops
from ..models import count_params
from ..optim import make_adamw
from ..provenance import stable_seed
from ..sequence.train import lr_factor
from .base import Combiner, CombinerResult, register

__all__ = ["train_lm_robust", "domain_losses", "GroupDROMono", "DoReMiMono"]


def domain_losses(model: nn.Module, idx: torch.Tensor, p: int) -> torch.Tensor:
    """(p,) mean next-token cross-entropy per domain of a batch with p equal blocks (B, T)."""
    logits, _ = model(idx[:, :-1])  # (B, T-1, V)
    B, T1, V = logits.shape
    ce = (
        F.cross_entropy(
            logits.float().reshape(B * T1, V), idx[:, 1:].reshape(B * T1), reduction="none"
        )
        .view(B, T1)
        .mean(dim=1)
    )  # (B,)
    return ce.view(p, -1).mean(dim=1)


def train_lm_robust(
    model: nn.Module,
    batches,
    steps: int,
    lr: float,
    p: int,
    rule,
    signal=None,
    device="cpu",
    seed: int = 0,
    warmup: int = 0,
    grad_clip: float = 1.0,
) -> dict:
    """AdamW on sum_k lam[k] NLL_k with lam from a lam rule updated after every step.

    ``batches(generator) -> (p m, T)`` equal blocks per domain (`pipeline.data.domain_batches`);
    ``rule``: a `lam_rules.LamRule`; ``signal(nll_k, idx) -> (p,)`` its gain (default the raw
    per-domain loss). The schedule is `train_lm`'s (warm-up, cosine to 10%). Returns
    {"lam": the rule's output, "losses": per-step lam-weighted loss, "lam_last": last iterate}."""
    model = model.to(device).train()
    gen = torch.Generator().manual_seed(stable_seed(seed, "batches"))
    opt = make_adamw(model.parameters(), lr, 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    losses = []
    for _ in range(steps):
        idx = batches(gen).to(device)
        nll_k = domain_losses(model, idx, p)
        loss = (rule.lam.to(nll_k.dtype) * nll_k).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        rule.update(nll_k.detach().double() if signal is None else signal(nll_k.detach(), idx))
        losses.append(float(loss.detach()))
    model.eval().requires_grad_(False)
    return {
        "lam": rule.output().cpu().numpy(),
        "lam_last": rule.lam.cpu().numpy(),
        "losses": losses,
    }


def _mono_budget(ctx, n_trainings: int = 1):
    """(flops, tokens) of ``n_trainings`` monolith trainings under the replicate's convention."""
    from ..models import lm_config

    s, p, T = ctx.mono_spec, ctx.splits.p, ctx.splits.T
    cfg = lm_config(s, ctx.experts.vocab_size, T, ctx.d_mono)
    return (
        n_trainings * train_flops(cfg, s.steps, p * s.batch_size),
        n_trainings * s.steps * p * s.batch_size * T,
    )


def _fit_robust(ctx, method: str, rule, signal=None):
    """Train (or reload) a matched monolith with ``rule``'s online weights; (model, out dict)."""
    from ..pipeline.data import domain_batches
    from ..pipeline.store import stage_key

    s, p, T = ctx.mono_spec, ctx.splits.p, ctx.splits.T
    key = stage_key(
        method, ctx.splits.key, asdict(s), ctx.d_mono, ctx.run_seed, rule.eta, type(rule).__name__
    )
    init = stable_seed(ctx.run_seed, "init", "mono")  # mono_uniform's initialisation

    def make(seed):  # in the experts' family, as mono_uniform
        return ctx.experts.family.make(s.n_layer, s.n_head, ctx.d_mono, s.d_ff, T, seed)

    def compute():
        model = make(init)
        out = train_lm_robust(
            model,
            domain_batches(ctx.splits.train, T, s.batch_size, ctx.splits.bos),
            s.steps,
            s.lr,
            p,
            rule,
            signal,
            ctx.device,
            stable_seed(ctx.run_seed, ctx.resample, method),
            s.warmup,
        )
        return {"state": model.state_dict(), **out}

    out = ctx.store.get(method, key, compute)
    model = make(init).to(ctx.device)
    model.load_state_dict(out["state"])
    return model.eval().requires_grad_(False), out


def _test_nll(ctx, model):
    from ..pipeline.evaluate import lm_nll

    return lm_nll(model, ctx.splits.test, ctx.device).double()


@register("mono_groupdro")
class GroupDROMono(Combiner):
    """Settings: ``eta`` (EG step on the raw per-domain loss; default 0.01, Sagawa et al.)."""

    trains = "a matched monolith on Group DRO online domain weights"
    grading = "exact"

    def fit(self, ctx, settings):
        p = ctx.splits.p
        rule = make_lam_rule("eg", p, float(settings.get("eta", 0.01)))
        model, out = _fit_robust(ctx, "mono_groupdro", rule)
        rows = [
            ("weights", f"lam_{n}", float(v))
            for n, v in zip(ctx.splits.corpora, out["lam_last"], strict=False)
        ]
        rows.append(
            (
                "train",
                "final_loss",
                float(np.mean(out["losses"][-max(1, len(out["losses"]) // 10) :])),
            )
        )
        flops, tokens = _mono_budget(ctx)
        return CombinerResult(
            _test_nll(ctx, model), ctx.cost(count_params(model), flops, tokens), rows=rows
        )


@register("mono_doremi")
class DoReMiMono(Combiner):
    """No settings: DoReMi's published rule (step 1, smoothing 1e-3); reference = mono_uniform."""

    trains = "a proxy on DoReMi weights (reference: mono_uniform), then a matched monolith on them"
    grading = "exact"

    def fit(self, ctx, settings):
        from ..pipeline.retrain import train_retrain

        p = ctx.splits.p
        ref = ctx.monos["mono_uniform"]

        def excess(nll_k, idx):
            with torch.no_grad():
                ref_k = domain_losses(ref, idx, p)
            return (nll_k - ref_k).double()  # the rule clips at 0

        rule = make_lam_rule("doremi", p, 1.0)
        _, out = _fit_robust(ctx, "mono_doremi_proxy", rule, excess)
        lam = np.asarray(out["lam"], dtype=np.float64)
        r = train_retrain(
            ctx.splits,
            ctx.run,
            spec=ctx.mono_spec,
            d_model=ctx.d_mono,
            lam=lam / lam.sum(),
            method="mono_doremi",
            family=ctx.experts.family,
        )
        rows = [
            ("weights", f"lam_{n}", float(v)) for n, v in zip(ctx.splits.corpora, lam, strict=False)
        ]
        rows.append(("train", "final_loss", r.final_loss))
        flops, tokens = _mono_budget(ctx, 3)  # reference, proxy, final
        return CombinerResult(
            _test_nll(ctx, r.model), ctx.cost(count_params(r.model), flops, tokens), rows=rows
        )
