"""The non-causal sequence gate g(x, .) (PAPER.md section 4, SPD: "a network reading the whole
input").

An encoder WITHOUT the causal mask reads the whole sequence (BOS included, see
`transformer` for the BOS convention); its states are mean-pooled and mapped to p logits. The
output is the row ``log g(x, .)``, a log-softmax over the p experts, as `algorithms.spd.train_spd`
expects. The gated model is ``pi_g(x) = sum_k g(x, k) E[k](x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from .transformer import Encoder, init_weights

__all__ = ["GateConfig", "SequenceGate"]


@dataclass
class GateConfig:
    """Sizes of `SequenceGate` and `router.CausalRouter`; ``vocab_size`` counts BOS."""

    vocab_size: int
    block_size: int
    p: int
    n_layer: int = 1
    n_head: int = 2
    d_model: int = 6
    d_ff: int = 24
    dropout: float = 0.0

    def __post_init__(self):
        if self.p < 1:
            raise ValueError(f"p (number of experts) must be >= 1 (got {self.p})")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )


class ExpertWeights(nn.Module):
    """Encoder + linear head to p expert logits: the body shared by the gate and the router."""

    causal: bool

    def __init__(self, config: GateConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(
            c.vocab_size,
            c.block_size,
            c.n_layer,
            c.n_head,
            c.d_model,
            c.d_ff,
            c.dropout,
            causal=self.causal,
        )
        self.head = nn.Linear(c.d_model, c.p)
        self.apply(init_weights)


class SequenceGate(ExpertWeights):
    """forward(idx (B, T)) -> log g (B, p); every output depends on every token."""

    causal = False

    def forward(self, idx):
        h = self.encoder(idx).mean(dim=1)  # (B, T, C) -> (B, C)
        return F.log_softmax(self.head(h).float(), dim=-1)
