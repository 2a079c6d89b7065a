"""Cache the frozen experts' log-likelihoods once (PAPER.md section 4, SPD; section 4,
distillation).

With ``log E[k](x)`` cached for every training sequence, an SPD step costs only the gate's
forward and backward pass; the per-token table is what Structural Distillation consumes.
Both run the experts in evaluation mode, without gradients, in float32.
"""

from __future__ import annotations

import torch

__all__ = ["cache_logliks", "cache_token_logprobs"]


def _check(experts, sequences):
    if len(experts) == 0:
        raise ValueError("experts is empty: give at least one frozen expert")
    if sequences.dim() != 2 or sequences.dtype != torch.long:
        raise ValueError(
            f"sequences must be a LongTensor (n, T) of BOS-prefixed tokens "
            f"(got {tuple(sequences.shape)}, {sequences.dtype})"
        )


@torch.no_grad()
def cache_token_logprobs(experts, sequences, device="cpu", batch_size: int = 256) -> torch.Tensor:
    """(n, T-1, p) float32 on CPU: log E[k](x_t | x_<t) for t = 1..T-1 of each sequence (n, T)."""
    _check(experts, sequences)
    out = []
    modes = [e.training for e in experts]
    for e in experts:
        e.to(device).eval()
    for chunk in sequences.split(batch_size):
        chunk = chunk.to(device)
        out.append(torch.stack([e.token_logprobs(chunk).float() for e in experts], dim=-1).cpu())
    for e, m in zip(experts, modes, strict=True):
        e.train(m)
    return torch.cat(out)


@torch.no_grad()
def cache_logliks(experts, sequences, device="cpu", batch_size: int = 256) -> torch.Tensor:
    """(n, p) float32 on CPU: log E[k](x) = sum_t log E[k](x_t | x_<t), whole-sequence
    log-likelihood."""
    return cache_token_logprobs(experts, sequences, device, batch_size).sum(dim=1)
