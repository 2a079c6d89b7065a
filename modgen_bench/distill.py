"""Structural distillation: replace the non-causal gate by a causal router (PAPER.md section 4).

The student keeps the frozen experts and learns only the mixing weights, token by token:
``S(x) = prod_{t>=1} sum_k gamma(x_<t, k) E[k](x_t | x_<t)`` (router output at position t-1 mixes
the experts for token t, see `models.router`). It is trained on sequences drawn from the gated
teacher pi_g (rejection sampling, `sampling.rejection_sample`) with the experts' per-token log
probabilities ``log P_t[k] = log E[k](x_t | x_<t)`` cached once, so a step costs only the router:
loss = ``-mean_t log(gamma(x_<t) . P_t)`` (nats per token).

For a teacher that is a fixed mixture ``sum_k w[k] E[k]``, the Bayes-optimal router is the
posterior of the expert given the prefix, ``gamma*(x_<t, k) ∝ w[k] E[k](x_<t)`` (`bayes_router`),
and the student then equals the teacher exactly; for an input-dependent gate this is the
paper's claim [reported], which the pipeline measures as the router's NLL gap to the gate.
"""

from __future__ import annotations

import torch
from torch import nn

from . import distributed as dist
from .optim import make_adamw

__all__ = ["student_token_logprobs", "student_logprob", "bayes_router", "train_router"]


def student_token_logprobs(log_gamma: torch.Tensor, token_logp: torch.Tensor) -> torch.Tensor:
    """log S(x_t | x_<t) = logsumexp_k(log gamma[:, t-1, k] + log P_t[k]).

    log_gamma: (B, T, p) router output; token_logp: (B, T-1, p) cached expert log-probs -> (B, T-1).
    """
    return torch.logsumexp(log_gamma[:, :-1] + token_logp, dim=-1)


def student_logprob(router: nn.Module, idx: torch.Tensor, token_logp: torch.Tensor) -> torch.Tensor:
    """(B,) whole-sequence log S(x) in nats."""
    return student_token_logprobs(router(idx), token_logp).sum(dim=-1)


def bayes_router(log_w: torch.Tensor, token_logp: torch.Tensor) -> torch.Tensor:
    """Posterior of the expert given the prefix under the mixture sum_k w[k] E[k]: (B, T, p).

    ``log gamma*[:, t] = log_softmax_k(log w[k] + sum_{s<=t} log P_s[k])`` (position 0: the prior).
    log_w: (p,) or (B, p); token_logp: (B, T-1, p).
    """
    B, _, p = token_logp.shape
    prefix = torch.cat(
        [token_logp.new_zeros(B, 1, p), token_logp.cumsum(dim=1)], dim=1
    )  # (B, T, p)
    return torch.log_softmax(log_w.expand(B, p)[:, None, :] + prefix, dim=-1)


def train_router(
    router: nn.Module,
    sequences: torch.Tensor,
    token_logp: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    label: str = "router",
) -> list[float]:
    """AdamW on the distillation loss over teacher samples; returns the per-step loss (nats/token).

    sequences: (n, T) teacher samples (BOS first); token_logp: (n, T-1, p) their cached expert
    log-probabilities. Batches are drawn with a generator seeded by ``seed`` (same seed, same run);
    under torchrun each rank trains on its slice of the same global batch (DDP, `distributed`).
    ``label`` names the progress bar (drawn only on a terminal: `modgen_bench.logs.progress`).
    """
    from .logs import progress as progress_bar

    router.to(device).train()
    opt = make_adamw(router.parameters(), lr, 0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    net, W = dist.wrap_ddp(router, device), dist.world_size()
    for _ in progress_bar(range(steps), desc=label, enabled=progress and dist.is_writer()):
        pick = torch.randint(0, sequences.shape[0], (batch_size,), generator=g)
        if W > 1:  # DDP: this rank's slice of the same global batch (distributed.py)
            pick = pick[dist.shard(batch_size)]
        idx, lp = sequences[pick].to(device), token_logp[pick].to(device)
        with torch.autocast(
            device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")
        ):
            log_gamma = net(idx)
        tok = student_token_logprobs(log_gamma.float(), lp)  # (b, T-1)
        if W > 1:  # W * (this rank's share of the global mean): DDP averages it
            part = -tok.sum() / (batch_size * tok.shape[1])
            loss, value = W * part, float(dist.all_reduce_sum(part))
        else:
            loss = -tok.mean()
            value = float(loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(value)
    router.eval()
    return losses
