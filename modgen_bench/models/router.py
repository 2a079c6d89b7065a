"""The causal router gamma_phi(x_<t, .) of Structural Distillation (PAPER.md section 4).

Entry t of the output reads idx[:, :t+1] (BOS and the first t data tokens) and gives the mixing
weights of the experts for token t+1, so the student is
``log S(x) = sum_{t>=1} logsumexp_k(log gamma[:, t-1, k] + log E[k](x_t | x_<t))``.
"""

from __future__ import annotations

import torch.nn.functional as F

from .gate import ExpertWeights

__all__ = ["CausalRouter"]


class CausalRouter(ExpertWeights):
    """forward(idx (B, T)) -> log gamma (B, T, p), log-softmax over the p experts."""

    causal = True

    def forward(self, idx):
        return F.log_softmax(self.head(self.encoder(idx)).float(), dim=-1)  # (B, T, p)
