"""Evaluation of a sequence model on test mixtures P_lam = sum_k lam[k] P[k] (PAPER.md sections 1,
5).

An evaluation set is n sequences with a (n, p) weight matrix W whose column k gives the
expectation under domain k: E_{P_k}[f] = sum_i W[i, k] f(x_i). Held-out samples give
W[i, k] = 1/n_k on domain k's items (a Monte Carlo estimate); an enumerated finite support gives
W[i, k] = P_k(x_i) (exact). All quantities in nats.
"""

from __future__ import annotations

import torch

__all__ = [
    "sample_weights",
    "domain_nll",
    "mixture_nll_per_token",
    "mixture_log_p",
    "mixture_kl",
    "log_Z",
    "model_logliks",
]


def _check_weights(weights, n):
    if weights.dim() != 2 or weights.shape[0] != n:
        raise ValueError(f"weights must have shape ({n}, p) (got {tuple(weights.shape)})")
    if (weights < 0).any() or not torch.allclose(
        weights.sum(0), torch.ones(weights.shape[1], dtype=weights.dtype), atol=1e-6
    ):
        raise ValueError(
            "weights: every column must be a distribution (non-negative, summing to 1)"
        )


def sample_weights(domain: torch.Tensor, p: int) -> torch.Tensor:
    """(n, p) W with W[i, k] = 1/n_k if item i was drawn from domain k (held-out samples)."""
    W = torch.nn.functional.one_hot(domain, p).double()
    counts = W.sum(0)
    if (counts == 0).any():
        raise ValueError(f"domains {torch.nonzero(counts == 0).flatten().tolist()} have no items")
    return W / counts


def domain_nll(log_model: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(p,): NLL_k = E_{P_k}[-log M(x)] from log M(x_i) (n,) and W (n, p)."""
    _check_weights(weights, log_model.shape[0])
    return weights.T.double() @ (-log_model.double())


def mixture_nll_per_token(log_model, weights, lam, n_tokens) -> float:
    """sum_k lam[k] NLL_k / n_tokens: the per-token NLL of M on P_lam (tokens per sequence
    fixed)."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    return float(lam @ domain_nll(log_model, weights)) / n_tokens


def mixture_log_p(log_p: torch.Tensor, lam) -> torch.Tensor:
    """(n,): log P_lam(x) = logsumexp_k(log lam[k] + log P_k(x)) from log_p (n, p)."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    return torch.logsumexp(torch.log(lam) + log_p.double(), dim=-1)


def mixture_kl(log_model, weights, log_p, lam) -> float:
    """KL(P_lam || M) = sum_k lam[k] E_{P_k}[log P_lam(x) - log M(x)] (exact when W is exact).

    log_p (n, p) holds the true log P_j(x_i) of every domain j (PAPER.md section 1: KL, not
    cross-entropy, is the robust objective).
    """
    _check_weights(weights, log_model.shape[0])
    lam = torch.as_tensor(lam, dtype=torch.float64)
    w_lam = weights.double() @ lam  # (n,) P_lam-weights
    gap = mixture_log_p(log_p, lam) - log_model.double()  # (n,)
    gap = torch.where(w_lam > 0, gap, torch.zeros_like(gap))  # 0 * (-inf) terms vanish
    return float(w_lam @ gap)


def log_Z(log_model: torch.Tensor) -> float:
    """log sum_{x in X0} M(x) over an enumerated support X0 (log of the normaliser Z)."""
    return float(torch.logsumexp(log_model.double(), dim=0))


@torch.no_grad()
def model_logliks(model, sequences, device="cpu", batch_size: int = 1024) -> torch.Tensor:
    """(n,) float64 on CPU: log M(x) = model.sequence_logprob for each BOS-prefixed sequence."""
    model.eval()
    return torch.cat(
        [
            model.to(device).sequence_logprob(c.to(device)).double().cpu()
            for c in sequences.split(batch_size)
        ]
    )
