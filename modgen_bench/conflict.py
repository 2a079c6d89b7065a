"""Gradient conflict between domains: mean pairwise cosine of per-domain gradients.

PAPER.md section 5 says the gate "mitigates gradient conflict" without giving a metric. We use the
one most papers on multi-task interference use: with ``G[k] = grad_theta L_k(theta)`` the gradient
of domain k's mean loss,

    C(theta) = mean_{j < k} cos(G[j], G[k]),   cos(a, b) = a.b / (|a| |b|)

in [-1, 1]; negative values mean that a step helping one domain hurts another. For the monolith
``L_k`` is its NLL on domain k; for the gate it is the gated model's NLL ``-log pi_g`` on domain k
(gradient over the gate's parameters only, the experts being frozen).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["domain_gradients", "pairwise_cosines", "mean_pairwise_cosine"]


def domain_gradients(
    model: nn.Module, losses: Sequence[Callable[[], torch.Tensor]]
) -> torch.Tensor:
    """(p, n_params): row k = the flattened gradient of ``losses[k]()`` over the trainable
    parameters."""
    params = [q for q in model.parameters() if q.requires_grad]
    rows = []
    for loss_fn in losses:
        grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(q)).reshape(-1).float()
                    for g, q in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def pairwise_cosines(G: torch.Tensor) -> torch.Tensor:
    """(p, p) matrix of cos(G[j], G[k]) (zero rows give cosine 0)."""
    unit = torch.nn.functional.normalize(G, dim=1)
    return unit @ unit.T


def mean_pairwise_cosine(G: torch.Tensor) -> float:
    """Mean of cos(G[j], G[k]) over the p(p-1)/2 pairs j < k."""
    C = pairwise_cosines(G)
    j, k = torch.triu_indices(C.shape[0], C.shape[0], offset=1)
    return float(C[j, k].mean())
