"""`DiscreteSampler`: the `Sampler` of a `DiscreteProblem` (PAPER.md sections 1 and 4).

Items are outcome ids x in {0..N-1}; ``sample`` draws ``per_domain`` ids from each P[k] with
`torch.multinomial`, and attaches log E[k](x) for every expert and log P_domain(x) (known on a
discrete problem, so the 'kl' lam signal is exact in expectation). ``sample_experts`` draws from
each expert E[k] instead (the proposal q = (1/p) sum_k E[k] of the Z estimate), marking the ids
inside the support S over which Z sums.
"""
from __future__ import annotations

import numpy as np
import torch

from ..gates import support_mask
from ..problem import DiscreteProblem
from .batch import GateBatch

__all__ = ["DiscreteSampler"]


class DiscreteSampler:
    """Samples outcome ids from the domains (or the experts) of a discrete problem."""

    def __init__(self, problem: DiscreteProblem, support: str = "domains", device="cpu",
                 dtype=torch.float32):
        self.p, self.N = problem.p, problem.N
        self.device = device
        self.P = torch.tensor(problem.P, device=device, dtype=torch.float64)       # (p, N)
        self.E = torch.tensor(problem.E, device=device, dtype=torch.float64)       # (p, N)
        with np.errstate(divide="ignore"):
            self.log_P = torch.as_tensor(np.log(problem.P), device=device, dtype=dtype)   # (p, N)
            self.log_E_T = torch.as_tensor(np.log(problem.E.T), device=device, dtype=dtype)  # (N, p)
        self.in_S = torch.as_tensor(support_mask(problem, support), device=device)     # (N,)
        self._domain = None                                                            # (B,) cached

    def _draw(self, dist: torch.Tensor, generator, per_domain: int):
        x = torch.multinomial(dist, per_domain, replacement=True, generator=generator)  # (p, per_domain)
        if self._domain is None or self._domain.numel() != x.numel():
            self._domain = torch.arange(self.p, device=self.device).repeat_interleave(per_domain)  # (B,)
        return x.reshape(-1), self._domain

    def sample(self, generator: torch.Generator, per_domain: int) -> GateBatch:
        x, domain = self._draw(self.P, generator, per_domain)
        return GateBatch(inputs=x, domain=domain, log_experts=self.log_E_T[x],
                         log_p=self.log_P[domain, x])

    def sample_experts(self, generator: torch.Generator, per_domain: int) -> GateBatch:
        x, domain = self._draw(self.E, generator, per_domain)
        return GateBatch(inputs=x, domain=domain, log_experts=self.log_E_T[x],
                         in_support=self.in_S[x])
