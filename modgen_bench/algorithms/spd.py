"""Stochastic Primal-Dual (SPD) training of a parametric gate (PAPER.md section 4, "SPD"; Thm 13).

Lagrangian, with NLL_k(theta) = E_{x ~ P[k]}[-log pi_g(x)] and Z the normaliser of pi_g:

    L(theta, lam, mu) = sum_k lam[k] NLL_k(theta) + mu (Z - 1)

Each step draws ``per_domain`` items from every domain (a `Sampler`), then
- theta: one AdamW step on L (cosine-decayed learning rate, see `SPDConfig`); a gate with
  ``sparse_grad`` (the discrete table) steps with SparseAdam on the batch's rows only;
- lam: one step of the configured lam rule (`lam_rules.LAM_RULES`) on the per-domain signal;
- mu: dual ascent on the equality Z = 1, mu <- mu + eta_mu (Zhat_ema - 1) (either sign).
Everything is in log space: log pi_g(x) = logsumexp_k(log g(x, k) + log E[k](x)).

Choices the paper leaves open [PAPER.md: open], and why:
- mu free in sign: G1 (PAPER.md section 1) asks for Z = 1, an equality, so mu is the multiplier
  of an equality constraint and takes either sign. The NLL gains from a larger pi_g only where
  the domains put mass; outside it (and for a parametric gate, wherever the sampled windows do
  not reach) nothing pushes pi_g up, so once a positive mu has pushed Z below 1 a mu projected
  at 0 leaves it there (measured: 7 of 18 trained real-text gates had fresh-draw Z < 1). A
  negative mu pays for mass and lifts Z back to 1. mu starts at 1: the unclipped optimum
  q = P_lam / mu sums to 1 exactly when mu = 1.
- rho = 4: the primal step sees mu + rho (Zhat_ema - 1) (an augmented-Lagrangian, proportional
  term). Adam normalises the gradient, so the gate moves at a fixed rate in the direction of
  the multiplier's sign; plain dual ascent then overshoots and oscillates around Z = 1 (measured
  on tests/test_algorithms_spd.py's leaking two-domain problem, 1000 steps: rho = 0 ends at exact
  Z = 0.88 with mu = -0.74, swinging between 0.86 and 1.25; rho = 4 ends at 1.008, rho = 10 at
  1.003).
- The last iterate meets Z = 1 only up to the dual dynamics (mu, the EMA, the decayed step):
  1-5% off on the CPU presets' gates. `normaliser.restore_z` projects it onto Z = 1 afterwards
  (the real-text pipeline's stage 4 does, `pipeline.gate.train_gate`).
- Z estimate. The paper's estimator Zhat = p mean_x <g(x,.), softmax_k(log E[k](x))> is an
  importance-sampling average of pi_g(x) / q(x) with q = (1/p) sum_k E[k]; it is unbiased only for
  x ~ q. On the domain batch (x ~ (1/p) sum_k P[k]) its mean is sum_x P_bar(x) pi_g(x) / q(x),
  which differs from Z unless the experts are exact (E[k] = P[k]). ``z_estimator="experts"``
  applies the same formula to items drawn from the experts (``sampler.sample_experts``), which
  is unbiased; ``"paper"`` uses the domain batch as the paper does; ``"auto"`` picks "experts"
  when the sampler offers it.
- lam signal: ``kl`` (NLL_k + mean log P_k(x), an unbiased KL(P_k || pi_g) estimate; needs
  batch.log_p), ``excess`` (NLL_k minus the domain expert's NLL, DoReMi style) or ``nll``
  (the paper's practical loss; NLL = KL + H(P_k), so it favours high-entropy domains).
- Defaults (chosen a priori, then checked, not tuned: SPD-kl ends within 1e-2 of V* in 2000
  steps on the `instances` families, tests/test_algorithms_spd.py and synthetic/convergence.py):
  eta_lam = 0.05 keeps the EG noise on lam small at 64 items per domain (signal s.e. ~0.1 nats);
  eta_mu = 0.05 with ema = 0.9 lets mu track Z without oscillating by more than a few percent;
  the cosine decay of the AdamW learning rate removes the constant-step noise floor of the last
  iterate (the gate returned is the last iterate, lam the rule's output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import distributed as dist
from ..errors import UserError
from ..optim import make_adamw
from .batch import GateBatch, Sampler
from .lam_rules import make_lam_rule

__all__ = [
    "SPDConfig",
    "SPDResult",
    "train_spd",
    "log_pi",
    "domain_means",
    "lam_signal",
    "estimate_Z",
    "SIGNALS",
    "Z_ESTIMATORS",
]

SIGNALS = ("kl", "excess", "nll")
Z_ESTIMATORS = ("auto", "experts", "paper")


@dataclass
class SPDConfig:
    """Hyperparameters of `train_spd` (the reasons for the defaults are in the module docstring)."""

    steps: int = 2000
    per_domain: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.0
    eta_lam: float = 0.05
    eta_mu: float = 0.05
    ema: float = 0.9
    lam_signal: str = "kl"
    lam_rule: str = "eg"
    Lambda: object | None = None
    seed: int = 0
    log_every: int = 10
    mu0: float = 1.0
    rho: float = 4.0  # proportional term: the primal sees mu + rho (Zhat_ema - 1)
    lr_schedule: str = "cosine"  # "cosine" | "constant"
    z_estimator: str = "auto"

    def __post_init__(self):
        if self.lam_signal not in SIGNALS:
            raise UserError(
                f"unknown lam signal '{self.lam_signal}'; choose one of {', '.join(SIGNALS)}"
            )
        if self.z_estimator not in Z_ESTIMATORS:
            raise UserError(
                f"unknown z_estimator '{self.z_estimator}'; choose one of {', '.join(Z_ESTIMATORS)}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise UserError(
                f"unknown lr_schedule '{self.lr_schedule}'; choose one of cosine, constant"
            )
        if self.steps < 1 or self.per_domain < 1 or self.log_every < 1:
            raise UserError("steps, per_domain and log_every must be >= 1")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"ema must be in [0, 1) (got {self.ema})")


@dataclass
class SPDResult:
    """The trained gate, the returned lam (the rule's output), the final mu, and the log.

    history: one row per logged step: step, samples (domain items drawn so far; the 'experts' Z
    estimate draws as many again from the experts), lam_k (current iterate), mu, Z_hat (EMA),
    loss, nll_k, signal_k, nll_per_token_k (when the batch has n_tokens), plus whatever
    ``evaluate`` returned.
    """

    gate: nn.Module
    lam: np.ndarray
    mu: float
    history: pd.DataFrame


def log_pi(log_g: torch.Tensor, log_experts: torch.Tensor) -> torch.Tensor:
    """log pi_g(x) = logsumexp_k(log g(x, k) + log E[k](x)); (B, p), (B, p) -> (B,)."""
    return torch.logsumexp(log_g + log_experts, dim=-1)


def domain_means(values: torch.Tensor, domain: torch.Tensor, p: int) -> torch.Tensor:
    """Per-domain mean of a (B,) tensor: (p,). Every domain must appear in the batch."""
    sums = torch.zeros(p, dtype=values.dtype, device=values.device).index_add(0, domain, values)
    counts = torch.bincount(domain, minlength=p).to(values.dtype)
    return sums / counts


def lam_signal(name: str, batch: GateBatch, nll: torch.Tensor, p: int) -> torch.Tensor:
    """The (p,) gain of the lam player from per-item NLL -log pi_g(x) (B,).

    nll: NLL_k; excess: NLL_k - E_{P_k}[-log E[k](x)]; kl: NLL_k + E_{P_k}[log P_k(x)], an
    unbiased estimate of KL(P_k || pi_g) (PAPER.md sections 1 and 4).
    """
    nll = nll.detach()
    if name == "nll":
        per_item = nll
    elif name == "excess":
        own = batch.log_experts.gather(1, batch.domain[:, None]).squeeze(1)  # (B,) log E_domain(x)
        per_item = nll + own.detach()
    elif name == "kl":
        if batch.log_p is None:
            raise ValueError(
                "the 'kl' lam signal needs batch.log_p (log P_domain(x)); this sampler "
                "does not provide it: use --lam-signal excess or nll"
            )
        per_item = nll + batch.log_p
    else:
        raise ValueError(f"unknown lam signal '{name}'; choose one of {', '.join(SIGNALS)}")
    return domain_means(per_item, batch.domain, p)


def estimate_Z(log_g: torch.Tensor, log_experts: torch.Tensor, in_support=None) -> torch.Tensor:
    """Zhat = p * mean_x <g(x, .), softmax_k(log E[k](x))> = mean_x pi_g(x) / q(x), with
    q = (1/p) sum_k E[k].

    Unbiased for Z = sum_{x in S} pi_g(x) when x ~ q (with in_support the indicator of S).
    """
    p = log_experts.shape[-1]
    w = torch.exp(torch.logsumexp(log_g + torch.log_softmax(log_experts, dim=-1), dim=-1))  # (B,)
    if in_support is not None:
        w = torch.where(in_support, w, torch.zeros_like(w))
    return p * w.mean()


def _lr_factor(schedule: str, step: int, steps: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * step / steps)) if schedule == "cosine" else 1.0


def _signal_items(name: str, batch: GateBatch, nll: torch.Tensor) -> torch.Tensor:
    """(B,) per-item values whose per-domain means are `lam_signal` (see there)."""
    nll = nll.detach()
    if name == "excess":
        return nll + batch.log_experts.gather(1, batch.domain[:, None]).squeeze(1).detach()
    if name == "kl":
        return nll + batch.log_p
    return nll


def _ddp_step(net, batch: GateBatch, eb, lam, mu: float, signal_name: str, p: int, opt):
    """One SPD gradient step under DistributedDataParallel, on this rank's slice of the global
    batch.

    Every rank holds the same global batch (same generator); rank r keeps slice r. Its share of
    NLL_k is sum_{i in slice, domain k} nll_i / n_k (n_k counted on the GLOBAL batch) and its share
    of Zhat is p sum_{i in slice} w_i / n, so the shares sum over ranks to the global statistics,
    which are all-reduced for the lam and mu updates. Backpropagating W times the rank's share of
    the Lagrangian makes DDP's gradient average equal the global Lagrangian's gradient.
    Returns (loss, NLL_k, Zhat, lam signal, NLL_k per token or None), all global.
    """
    W = dist.world_size()
    sl = dist.shard(len(batch.domain))
    counts = torch.bincount(batch.domain, minlength=p).to(torch.float32)  # (p,) global n_k
    inputs, log_e, domain = batch.inputs[sl], batch.log_experts[sl], batch.domain[sl]
    b = inputs.shape[0]
    if eb is not None:  # one forward pass
        esl = dist.shard(len(eb.domain))
        log_g_all = net(torch.cat([inputs, eb.inputs[esl]]))
        log_g, log_ge = log_g_all[:b], log_g_all[b:]
    else:
        log_g = net(inputs)
    nll = -log_pi(log_g, log_e)  # (b,)
    part_k = torch.zeros(p, dtype=nll.dtype, device=nll.device).index_add(0, domain, nll) / counts
    if eb is not None:
        w = torch.exp(torch.logsumexp(log_ge + torch.log_softmax(eb.log_experts[esl], -1), -1))
        if eb.in_support is not None:
            w = torch.where(eb.in_support[esl], w, torch.zeros_like(w))
        part_Z = p * w.sum() / len(eb.domain)
    else:
        w = torch.exp(torch.logsumexp(log_g + torch.log_softmax(log_e, -1), -1))
        part_Z = p * w.sum() / len(batch.domain)
    part = (lam.to(part_k.dtype) * part_k).sum() + mu * (part_Z - 1.0 / W)
    opt.zero_grad(set_to_none=True)
    (W * part).backward()
    per_domain = lambda v: dist.all_reduce_sum(  # noqa: E731
        torch.zeros(p, dtype=v.dtype, device=v.device).index_add(0, domain, v.detach()) / counts
    )
    local = GateBatch(inputs, domain, log_e, None if batch.log_p is None else batch.log_p[sl])
    tok = per_domain(nll / batch.n_tokens[sl].to(nll.dtype)) if batch.n_tokens is not None else None
    return (
        dist.all_reduce_sum(part),
        dist.all_reduce_sum(part_k),
        dist.all_reduce_sum(part_Z),
        per_domain(_signal_items(signal_name, local, nll)),
        tok,
    )


class _StepStats(NamedTuple):
    """One primal step's statistics: the Lagrangian, NLL_k, Zhat, the lam signal, NLL_k per token
    (None when not known yet) and the per-item NLL (None under DDP)."""

    loss: torch.Tensor
    nll_k: torch.Tensor
    Z_hat: torch.Tensor
    signal: torch.Tensor
    tok: torch.Tensor | None
    nll: torch.Tensor | None


def _make_optimizer(gate: nn.Module, config: SPDConfig):
    """The gate's optimiser: SparseAdam for a table gate with ``sparse_grad``, AdamW otherwise."""
    if getattr(gate, "sparse_grad", False):  # a table gate: per-batch rows and optimiser state
        if config.weight_decay:
            raise ValueError(
                "weight_decay needs a dense gate (make_gate('table', ..., sparse=False))"
            )
        return torch.optim.SparseAdam(list(gate.parameters()), lr=config.lr)
    return make_adamw(gate.parameters(), config.lr, config.weight_decay)


def _uses_experts(sampler: Sampler, config: SPDConfig) -> bool:
    """Whether Zhat is estimated on items drawn from the experts (``config.z_estimator``)."""
    use_experts = config.z_estimator == "experts" or (
        config.z_estimator == "auto" and hasattr(sampler, "sample_experts")
    )
    if use_experts and not hasattr(sampler, "sample_experts"):
        raise ValueError(
            "z_estimator='experts' needs a sampler with sample_experts(); use z_estimator='paper'"
        )
    return use_experts


def _local_step(gate, batch: GateBatch, eb, lam, mu: float, signal_name: str, p: int, opt):
    """One SPD gradient step on the whole batch in this process (no DDP); the optimiser's
    ``step`` is the caller's."""
    log_g = gate(batch.inputs)  # (B, p)
    nll = -log_pi(log_g, batch.log_experts)  # (B,)
    nll_k = domain_means(nll, batch.domain, p)  # (p,)
    if eb is not None:
        Z_hat = estimate_Z(gate(eb.inputs), eb.log_experts, eb.in_support)
    else:
        Z_hat = estimate_Z(log_g, batch.log_experts)
    loss = (lam.to(nll_k.dtype) * nll_k).sum() + mu * (Z_hat - 1.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    return _StepStats(loss, nll_k, Z_hat, lam_signal(signal_name, batch, nll, p), None, nll)


def _primal_step(gate, net, batch: GateBatch, eb, lam, mu: float, config: SPDConfig, p: int, opt):
    """The step's gradient and statistics: under DDP on this rank's slice, else locally."""
    if dist.is_distributed():
        loss, nll_k, Z_hat, signal, tok = _ddp_step(
            net, batch, eb, lam, mu, config.lam_signal, p, opt
        )
        return _StepStats(loss, nll_k, Z_hat, signal, tok, None)
    return _local_step(gate, batch, eb, lam, mu, config.lam_signal, p, opt)


def _history_row(step: int, config: SPDConfig, p: int, mu: float, Z_ema: float, rule, s, batch):
    """The logged row of a step: counters, duals, loss and the per-domain lam, NLL, signal and
    (for token sequences) NLL per token."""
    row = {
        "step": step,
        "samples": step * p * config.per_domain,
        "mu": mu,
        "Z_hat": Z_ema,
        "loss": float(s.loss.detach()),
    }
    row.update({f"lam_{k}": float(v) for k, v in enumerate(rule.lam)})
    row.update({f"nll_{k}": float(v) for k, v in enumerate(s.nll_k.detach())})
    row.update({f"signal_{k}": float(v) for k, v in enumerate(s.signal)})
    tok = s.tok
    if tok is None and batch.n_tokens is not None and not dist.is_distributed():
        tok = domain_means(s.nll.detach() / batch.n_tokens.to(s.nll.dtype), batch.domain, p)
    if tok is not None:
        row.update({f"nll_per_token_{k}": float(v) for k, v in enumerate(tok)})
    return row


def train_spd(
    gate: nn.Module,
    sampler: Sampler,
    config: SPDConfig,
    device="cpu",
    progress=False,
    evaluate: Callable[[nn.Module], dict] | None = None,
    label: str = "spd",
) -> SPDResult:
    """Run SPD for ``config.steps`` steps; ``evaluate(gate) -> dict`` adds columns at log steps.

    The sampler gets a `torch.Generator` on ``device`` seeded with ``config.seed``: same seed ->
    same batches and the same numbers on CPU (the gate's initialisation is the caller's).
    ``label`` names the progress bar (drawn only on a terminal: `modgen_bench.logs.progress`).

    Under torchrun (`modgen_bench.distributed`) the gate trains with DistributedDataParallel on
    slices of the same global batches, and the lam and mu updates use the all-reduced statistics
    (per-domain NLL, Zhat, the lam signal), so the run does not depend on the number of processes.
    """
    from ..logs import progress as progress_bar

    p = sampler.p
    gate = gate.to(device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    opt = _make_optimizer(gate, config)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_factor(config.lr_schedule, s, config.steps)
    )
    rule = make_lam_rule(config.lam_rule, p, config.eta_lam, config.Lambda, device)
    use_experts = _uses_experts(sampler, config)
    mu, Z_ema, rows = float(config.mu0), None, []
    net = dist.wrap_ddp(gate, device)  # the gate itself unless under torchrun
    for step in progress_bar(
        range(1, config.steps + 1), desc=label, enabled=progress and dist.is_writer()
    ):
        batch = sampler.sample(gen, config.per_domain).to(device)
        eb = sampler.sample_experts(gen, config.per_domain).to(device) if use_experts else None
        # the multiplier the primal step sees: mu plus a proportional term in the constraint's
        # current violation (augmented Lagrangian; damps the mu <-> Z oscillation of plain dual
        # ascent)
        mu_eff = mu if Z_ema is None else mu + config.rho * (Z_ema - 1.0)
        s = _primal_step(gate, net, batch, eb, rule.lam, mu_eff, config, p, opt)
        opt.step()
        sched.step()
        z = float(s.Z_hat.detach())
        Z_ema = z if Z_ema is None else config.ema * Z_ema + (1 - config.ema) * z
        mu = mu + config.eta_mu * (Z_ema - 1.0)  # equality constraint: mu of either sign
        rule.update(s.signal)
        if step % config.log_every == 0 or step == config.steps:
            row = _history_row(step, config, p, mu, Z_ema, rule, s, batch)
            if evaluate is not None:
                gate.eval()
                row.update(evaluate(gate))
                gate.train()
            rows.append(row)
    return SPDResult(gate=gate, lam=rule.output().cpu().numpy(), mu=mu, history=pd.DataFrame(rows))
