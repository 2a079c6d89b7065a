"""router_prefix_top1: the first m tokens pick one expert (SmallTalk LM, arXiv 2410.03529).

    S(x) = q(x_1..m) E_k*(x_m+1..L | x_1..m),   q = (1/p) sum_k E_k,   k* = argmax_k E_k(x_1..m)

SmallTalk routes a sequence to the expert that scores its prefix best; the prefix itself must be
scored by something that does not depend on the choice, here the uniform mixture of the experts
(a distribution over prefixes), and the continuation by the chosen expert (a conditional
distribution given the prefix), so S is a proper distribution: summed over all sequences it is
sum_prefix q(prefix) * 1 = 1 exactly. Nothing is trained; m >= L reduces to the constant 1/p gate.
"""

from __future__ import annotations

import math

import torch

from .base import Combiner, CombinerResult, register

__all__ = ["prefix_top1_logprob", "PrefixTop1"]


def prefix_top1_logprob(token_lp: torch.Tensor, m: int) -> torch.Tensor:
    """(n,) log S(x) from per-token log-probs ``token_lp`` (n, L, p) = log E_k(x_t | x_<t).

    Ties in the prefix score go to the lowest expert index (torch.argmax), a fixed rule."""
    if m < 0:
        raise ValueError(f"router_prefix_top1: the prefix length m must be >= 0 (got {m})")
    lp = token_lp.double()
    n, L, p = lp.shape
    m = min(m, L)
    prefix = lp[:, :m].sum(dim=1)  # (n, p)
    log_q = torch.logsumexp(prefix, dim=-1) - math.log(p)  # (n,)
    k = prefix.argmax(dim=-1)  # (n,)
    rest = lp[:, m:].sum(dim=1).gather(1, k[:, None]).squeeze(1)  # (n,)
    return log_q + rest


@register("router_prefix_top1")
class PrefixTop1(Combiner):
    """Settings: ``m`` (prefix tokens; default 8)."""

    trains = "nothing (the prefix's best-scoring expert continues the sequence)"
    grading = "exact"

    def fit(self, ctx, settings):
        m = int(settings.get("m", 8))
        lp = ctx.cache.test_tok
        nll = -prefix_top1_logprob(lp, m) / lp.shape[1]
        b = ctx.budget
        return CombinerResult(
            nll,
            ctx.cost(b["expert_params"], b["expert_flops"], b["expert_tokens"]),
            rows=[("train", "prefix_tokens", float(min(m, lp.shape[1])))],
        )
