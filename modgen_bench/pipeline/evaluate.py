"""Stage 8, evaluation: per-domain test (and validation) NLL per token of every model (PAPER.md
section 5, Tables 1-2). Every window has T-1 tokens, so a mixture's NLL is linear in lam:
NLL(P_lam) = sum_k lam[k] NLL_k, and the worst case over the simplex is the worst vertex.

Inputs: test/validation windows, the experts' cached log-likelihoods, the models (gates, LMs,
router). Outputs: (p,) per-domain NLL per token (nats) per model; nothing cached (cheap).
"""
from __future__ import annotations

import numpy as np
import torch

from ..algorithms.spd import log_pi
from ..distill import student_logprob
from ..sequence.evaluate import model_logliks

__all__ = ["per_domain", "lm_nll", "gate_nll", "router_nll", "expert_nll"]


def per_domain(nll: torch.Tensor, p: int) -> np.ndarray:
    """(p * n,) per-window NLL laid out domain by domain -> (p,) per-domain means."""
    return nll.view(p, -1).mean(dim=1).numpy().astype(np.float64)


def lm_nll(model, windows, device) -> torch.Tensor:
    """(n,) per-token NLL (nats) of each window under a causal LM."""
    return -model_logliks(model, windows, device) / (windows.shape[1] - 1)


@torch.no_grad()
def gate_nll(gate, windows, log_e, device, batch: int = 256) -> torch.Tensor:
    """(n,) per-token NLL of the gated model pi_g(x) = sum_k g(x, k) E[k](x); log_e (n, p) cached."""
    gate.eval()
    log_g = torch.cat([gate(w.to(device)).float().cpu() for w in windows.split(batch)])
    return -log_pi(log_g, log_e) / (windows.shape[1] - 1)


@torch.no_grad()
def router_nll(router, windows, token_logp, device, batch: int = 256) -> torch.Tensor:
    """(n,) per-token NLL of the distilled student S(x); token_logp (n, T-1, p) cached."""
    return torch.cat([-student_logprob(router, w.to(device), lp.to(device)).cpu() for w, lp in
                      zip(windows.split(batch), token_logp.split(batch))]) / (windows.shape[1] - 1)


def expert_nll(log_e: torch.Tensor, k: int, T: int) -> torch.Tensor:
    """(n,) per-token NLL of expert k from its cached whole-window log-likelihoods (n, p)."""
    return -log_e[:, k] / (T - 1)
