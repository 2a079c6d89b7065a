"""What one SPD step consumes: a batch drawn from the uniform mixture of the domains (PAPER.md
section 4).

A `Sampler` draws ``per_domain`` items from EACH domain, so the batch is a sample of
``(1/p) sum_k P[k]``; the frozen experts' log-likelihoods come with it (cached once, so a step
costs only the gate). A gate is any ``nn.Module`` whose ``forward(inputs)`` returns the (B, p)
log-softmax rows ``log g(x, .)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = ["GateBatch", "Sampler"]


@dataclass
class GateBatch:
    """One batch of B items.

    Attributes:
        inputs: what the gate reads: LongTensor (B,) outcome ids, LongTensor (B, T) tokens, or
            FloatTensor (B, d) features.
        domain: (B,) the domain each item was drawn from (for an expert batch: the expert).
        log_experts: (B, p) log E[k](x), the whole-item log-likelihood under each frozen expert.
        log_p: (B,) log P_domain(x) when known; needed by the 'kl' lam signal.
        n_tokens: (B,) tokens per item; used only to log per-token NLL (the loss is per item).
        in_support: (B,) bool, whether x lies in the support S over which Z sums (expert
            batches only; None means every item counts).
    """

    inputs: object
    domain: torch.Tensor
    log_experts: torch.Tensor
    log_p: torch.Tensor | None = None
    n_tokens: torch.Tensor | None = None
    in_support: torch.Tensor | None = None

    def to(self, device) -> "GateBatch":
        def mv(t):
            return t.to(device) if isinstance(t, torch.Tensor) else t

        return GateBatch(
            mv(self.inputs),
            mv(self.domain),
            mv(self.log_experts),
            mv(self.log_p),
            mv(self.n_tokens),
            mv(self.in_support),
        )


@runtime_checkable
class Sampler(Protocol):
    """Draws ``per_domain`` items from each of the p domains (batch ~ (1/p) sum_k P[k]).

    A sampler may also define ``sample_experts(generator, per_domain) -> GateBatch``: items drawn
    from each expert, i.e. from the proposal q = (1/p) sum_k E[k]; SPD then estimates Z without
    bias (see `spd.estimate_Z`).
    """

    p: int

    def sample(self, generator: torch.Generator, per_domain: int) -> GateBatch: ...
