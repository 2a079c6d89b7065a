"""Stage 8, evaluation: per-domain test (and validation) NLL per token of every model (PAPER.md
section 5, Tables 1-2). Every window has T-1 tokens, so a mixture's NLL is linear in lam:
NLL(P_lam) = sum_k lam[k] NLL_k, and the worst case over the simplex is the worst vertex.

Inputs: test/validation windows, the experts' cached log-likelihoods, the models (gates, LMs,
router). Outputs: (p,) per-domain NLL per token (nats) per model; nothing cached (cheap).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..algorithms.spd import log_pi
from ..distill import student_logprob
from ..sequence.evaluate import model_logliks

__all__ = [
    "per_domain",
    "lm_nll",
    "gate_nll",
    "router_nll",
    "expert_nll",
    "const_gate_nll",
    "bayes_router_nll",
    "routing_split",
]


def per_domain(nll: torch.Tensor, p: int) -> np.ndarray:
    """(p * n,) per-window NLL laid out domain by domain -> (p,) per-domain means."""
    return nll.view(p, -1).mean(dim=1).numpy().astype(np.float64)


def lm_nll(model, windows, device) -> torch.Tensor:
    """(n,) per-token NLL (nats) of each window under a causal LM."""
    return -model_logliks(model, windows, device) / (windows.shape[1] - 1)


@torch.no_grad()
def gate_nll(gate, windows, log_e, device, batch: int = 256) -> torch.Tensor:
    """(n,) per-token NLL of the gated model pi_g(x) = sum_k g(x, k) E[k](x); log_e (n, p)
    cached."""
    gate.eval()
    log_g = torch.cat([gate(w.to(device)).float().cpu() for w in windows.split(batch)])
    return -log_pi(log_g, log_e) / (windows.shape[1] - 1)


@torch.no_grad()
def router_nll(router, windows, token_logp, device, batch: int = 256) -> torch.Tensor:
    """(n,) per-token NLL of the distilled student S(x); token_logp (n, T-1, p) cached."""
    return torch.cat(
        [
            -student_logprob(router, w.to(device), lp.to(device)).cpu()
            for w, lp in zip(windows.split(batch), token_logp.split(batch), strict=True)
        ]
    ) / (windows.shape[1] - 1)


def expert_nll(log_e: torch.Tensor, k: int, T: int) -> torch.Tensor:
    """(n,) per-token NLL of expert k from its cached whole-window log-likelihoods (n, p)."""
    return -log_e[:, k] / (T - 1)


def const_gate_nll(test_e: torch.Tensor, T: int) -> np.ndarray:
    """(n,) per-token NLL of the constant gate 1/p, -log((1/p) sum_k E[k](x)) / (T - 1), from
    the cached whole-window log E (n, p). Its Z is exactly 1 (a mixture of distributions)."""
    p = test_e.shape[-1]
    return (-(torch.logsumexp(test_e.double(), dim=-1) - math.log(p)) / (T - 1)).numpy()


def bayes_router_nll(test_tok: torch.Tensor, prior=None) -> torch.Tensor:
    """(n,) per-token NLL of the Bayes-posterior causal router's student (PAPER.md section 4,
    Structural Distillation: the Bayes-optimal router is the posterior of the expert given the
    prefix): gamma_t(k) ∝ prior_k prod_{s<t} E[k](x_s | x_<s), student token prob
    sum_k gamma_t(k) E[k](x_t | x_<t). test_tok: (n, T-1, p) per-token log-probs."""
    n, L, p = test_tok.shape
    lp = test_tok.double()
    log_prior = (
        torch.full((p,), -math.log(p), dtype=torch.float64)
        if prior is None
        else torch.log(torch.as_tensor(prior, dtype=torch.float64))
    )
    prefix = torch.cumsum(lp, dim=1) - lp  # (n, L, p) sum_{s<t}
    log_post = torch.log_softmax(log_prior + prefix, dim=-1)  # (n, L, p)
    tok = torch.logsumexp(log_post + lp, dim=-1)  # (n, L)
    return -tok.sum(dim=1) / L


def routing_split(gate, const, expert_k, mono) -> dict:
    """gate - mono on domain k's windows = routing_proper (gate - const) + domain_prior
    (const - expert_k, at most log p / (T - 1) per token: -log((1/p) sum_j E_j) <=
    -log((1/p) E_k)) + expert_deficit (expert_k - mono). Inputs: per-window NLL arrays."""
    g, c, e, m = (float(np.mean(v)) for v in (gate, const, expert_k, mono))
    return {"routing_proper": g - c, "domain_prior": c - e, "expert_deficit": e - m}
