"""Token-level combiners of the frozen experts, normalised over the vocabulary at every step.

With E_k(. | x_<t) the experts' next-token distributions over the vocabulary V and a causal
network reading the prefix x_<t (`models.CausalRouter`: position t-1 gives the weights of token t):

- ``router_token``: the mixture  S(v | x_<t) = sum_k gamma_k(x_<t) E_k(v | x_<t), gamma on the
  simplex, trained by maximum likelihood on the uniform mixture of the domains' training windows;
- ``router_token_dro``: the same model with Group DRO weights on the per-domain losses (Sagawa et
  al. 2020: EG step ``eta`` on the raw per-domain NLL);
- ``pool_loglinear``: log-linear pooling S(v | x_<t) = softmax_v(sum_k w_k(x_<t) log E_k(v | x_<t)),
  w = tau gamma with a learned temperature tau > 0 (tau > 1 sharpens the geometric mixture).

A mixture of distributions and a softmax both sum to 1 over V at every step, so Z = 1 holds by
construction (no normaliser to estimate); a whole window's probability is the product of its steps.
These are the obvious alternatives to the paper's Z constraint (PAPER.md section 1, G1).
"""

from __future__ import annotations

import torch
from torch import nn

from ..algorithms.lam_rules import make_lam_rule
from ..models import CausalRouter, count_params
from ..provenance import stable_seed
from .base import Combiner, CombinerResult, register, train_flops_module

__all__ = [
    "expert_next_logprobs",
    "mixture_logprobs",
    "loglinear_logprobs",
    "TokenCombiner",
    "window_nll",
    "train_token_combiner",
    "RouterToken",
    "RouterTokenDRO",
    "PoolLogLinear",
    "LOG_FLOOR",
]

#: log-probabilities below this are treated as this (a BOS logit is -inf in every expert, and
#: 0 * -inf would be NaN in the log-linear pool); e^-1e4 is 0 in float32 and float64 alike
LOG_FLOOR = -1e4


@torch.no_grad()
def expert_next_logprobs(models, idx: torch.Tensor) -> torch.Tensor:
    """(B, T-1, p, V): log E_k(v | idx[:, :t]) for t = 1 .. T-1 (idx (B, T), BOS first), floored
    at LOG_FLOOR (a token no expert can emit would give logsumexp over -inf only: NaN gradients)."""
    out = [torch.log_softmax(m(idx[:, :-1])[0].float(), dim=-1) for m in models]  # p x (B, T-1, V)
    return torch.stack(out, dim=2).clamp(min=LOG_FLOOR)


def mixture_logprobs(log_gamma: torch.Tensor, expert_lp: torch.Tensor) -> torch.Tensor:
    """log sum_k gamma_k E_k(v | .): log_gamma (B, L, p), expert_lp (B, L, p, V) -> (B, L, V)."""
    return torch.logsumexp(log_gamma[..., None] + expert_lp, dim=2)


def loglinear_logprobs(w: torch.Tensor, expert_lp: torch.Tensor) -> torch.Tensor:
    """log softmax_v(sum_k w_k log E_k(v | .)) (B, L, V); w (B, L, p), expert_lp (B, L, p, V)."""
    pooled = (w[..., None] * expert_lp.clamp(min=LOG_FLOOR)).sum(dim=2)  # (B, L, V)
    return torch.log_softmax(pooled, dim=-1)


class TokenCombiner(nn.Module):
    """A `CausalRouter` over the experts; ``kind`` "mixture" or "loglinear" (module docstring).

    forward(idx (B, T), expert_lp (B, T-1, p, V)) -> (B, T-1, V) next-token log-probabilities."""

    def __init__(self, gate_config, kind: str = "mixture"):
        super().__init__()
        if kind not in ("mixture", "loglinear"):
            raise ValueError(f"unknown token combiner kind {kind!r}; choose mixture or loglinear")
        self.kind = kind
        self.router = CausalRouter(gate_config)
        self.log_tau = nn.Parameter(torch.zeros(())) if kind == "loglinear" else None

    def forward(self, idx, expert_lp):
        log_gamma = self.router(idx)[:, :-1]  # (B, T-1, p)
        if self.kind == "mixture":
            return mixture_logprobs(log_gamma, expert_lp)
        return loglinear_logprobs(torch.exp(log_gamma + self.log_tau), expert_lp)


def window_nll(net: TokenCombiner, idx: torch.Tensor, expert_lp: torch.Tensor) -> torch.Tensor:
    """(B,) NLL per token of each window: -mean_t log S(idx[:, t] | idx[:, :t])."""
    lp = net(idx, expert_lp)  # (B, T-1, V)
    return -lp.gather(-1, idx[:, 1:, None]).squeeze(-1).mean(dim=1)


def train_token_combiner(
    net: TokenCombiner,
    models,
    pool: torch.Tensor,
    steps: int,
    lr: float,
    per_domain: int,
    rule,
    seed: int,
    device="cpu",
) -> list:
    """AdamW on sum_k lam[k] NLL_k over windows drawn from ``pool`` (p, n, T), ``per_domain`` per
    domain per step; lam from ``rule`` (updated on the raw per-domain NLL after each step; EG with
    step 0 keeps the uniform mixture: maximum likelihood). Returns the per-step losses."""
    from ..optim import make_adamw

    p, n, _ = pool.shape
    net.to(device).train()
    opt = make_adamw(net.parameters(), lr, 0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        pick = torch.randint(0, n, (p, per_domain), generator=g)
        idx = torch.stack([pool[k, pick[k]] for k in range(p)]).flatten(0, 1).to(device)  # (p m, T)
        nll_k = window_nll(net, idx, expert_next_logprobs(models, idx)).view(p, -1).mean(dim=1)
        loss = (rule.lam.to(nll_k.dtype) * nll_k).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rule.update(nll_k.detach().double())
        losses.append(float(loss.detach()))
    net.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def token_test_nll(
    net: TokenCombiner, models, windows: torch.Tensor, device, batch: int = 128
) -> torch.Tensor:
    """(n,) per-token NLL of every test window under the combiner."""
    return torch.cat(
        [
            window_nll(net, w.to(device), expert_next_logprobs(models, w.to(device))).double().cpu()
            for w in windows.split(batch)
        ]
    )


class _TokenBase(Combiner):
    """Shared fit: sizes from the preset's [gate] table, training from its [router] table."""

    grading = "token"
    kind, dro = "mixture", False

    def fit(self, ctx, settings):
        from ..pipeline.gate import gate_config
        from ..pipeline.store import stage_key

        p, T, tr = ctx.splits.p, ctx.splits.T, ctx.cfg.router
        eta = float(settings.get("eta", 0.01)) if self.dro else 0.0
        per = max(1, tr.batch_size // p)
        gcfg = gate_config(ctx.cfg.gate, T, p, ctx.experts.vocab_size)
        key = stage_key(
            self.name,
            ctx.experts.key,
            ctx.splits.key,
            vars(ctx.cfg.gate),
            vars(tr),
            eta,
            ctx.run_seed,
            ctx.resample,
        )
        models = ctx.experts.modules

        def compute():
            torch.manual_seed(stable_seed(ctx.run_seed, "init", "router"))
            net = TokenCombiner(gcfg, self.kind)
            rule = make_lam_rule("eg", p, eta)
            losses = train_token_combiner(
                net,
                models,
                ctx.splits.pool,
                tr.steps,
                tr.lr,
                per,
                rule,
                stable_seed(ctx.run_seed, ctx.resample, self.name),
                ctx.device,
            )
            return {"state": net.state_dict(), "losses": losses, "lam": rule.lam.cpu().numpy()}

        out = ctx.store.get(self.name, key, compute)
        net = TokenCombiner(gcfg, self.kind).to(ctx.device)
        net.load_state_dict(out["state"])
        net.eval()
        rows = [("train", "final_loss", float(sum(out["losses"][-10:]) / len(out["losses"][-10:])))]
        if self.dro:
            rows += [
                ("weights", f"lam_{c}", float(v))
                for c, v in zip(ctx.splits.corpora, out["lam"], strict=False)
            ]
        if self.kind == "loglinear":
            rows.append(("train", "tau", float(torch.exp(net.log_tau.detach()))))
        return CombinerResult(
            token_test_nll(net, models, ctx.splits.test, ctx.device),
            _cost(ctx, net, tr, per),
            rows=rows,
        )


def _cost(ctx, net, tr, per):
    """Experts' budget + the combiner's training (6 N per token) + the experts' forward passes on
    its training windows (2 N_expert per token and expert)."""
    b, p, T = ctx.budget, ctx.splits.p, ctx.splits.T
    n, tokens = count_params(net), tr.steps * p * per * T
    flops = b["expert_flops"] + train_flops_module(n, tokens) + 2.0 * b["expert_params"] * tokens
    return ctx.cost(b["expert_params"] + n, flops, b["expert_tokens"] + tokens)


@register("router_token")
class RouterToken(_TokenBase):
    trains = (
        "a causal per-token router over the experts' next-token distributions (max. likelihood)"
    )


@register("router_token_dro")
class RouterTokenDRO(_TokenBase):
    """Settings: ``eta`` (Group DRO's EG step on the per-domain NLL; default 0.01)."""

    trains = "the per-token router with Group DRO domain weights"
    dro = True


@register("pool_loglinear")
class PoolLogLinear(_TokenBase):
    trains = "log-linear pooling weights w(prefix) and a temperature (max. likelihood)"
    kind = "loglinear"
