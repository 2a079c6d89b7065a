"""`DiscreteSampler`: the `Sampler` of a `DiscreteProblem` (PAPER.md sections 1 and 4).

Items are outcome ids x in {0..N-1}; ``sample`` draws ``per_domain`` ids from each P[k] by
inverse-CDF sampling (cumulative sums computed once, then `torch.searchsorted` on uniforms: a
step costs O(p m log N), where `torch.multinomial` re-reads all p N masses on every call), and
attaches log E[k](x) for every expert and log P_domain(x) (known on a discrete problem, so the
'kl' lam signal is exact in expectation). ``sample_experts`` draws from each expert E[k]
instead (the proposal q = (1/p) sum_k E[k] of the Z estimate), marking the ids inside the
support S over which Z sums.
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

    def __init__(
        self, problem: DiscreteProblem, support: str = "domains", device="cpu", dtype=torch.float32
    ):
        self.p, self.N = problem.p, problem.N
        self.device = device
        self.P = torch.tensor(problem.P, device=device, dtype=torch.float64)  # (p, N)
        self.E = torch.tensor(problem.E, device=device, dtype=torch.float64)  # (p, N)
        with np.errstate(divide="ignore"):
            self.log_P = torch.as_tensor(np.log(problem.P), device=device, dtype=dtype)  # (p, N)
            self.log_E_T = torch.as_tensor(
                np.log(problem.E.T), device=device, dtype=dtype
            )  # (N, p)
        self.in_S = torch.as_tensor(support_mask(problem, support), device=device)  # (N,)
        self._cdf = {"P": self._cdf_of(self.P), "E": self._cdf_of(self.E)}  # (p, N) each
        self._domain = None  # (B,) cached

    @staticmethod
    def _cdf_of(dist: torch.Tensor) -> torch.Tensor:
        """Row-wise cumulative sums normalised to end at exactly 1 (float64)."""
        c = torch.cumsum(dist, dim=1)
        return c / c[:, -1:]

    def _draw(self, which: str, generator, per_domain: int):
        """per_domain ids from each row: x = min{i : cdf[i] > u}, u ~ U[0, 1), so an outcome of zero
        mass (a flat step of the CDF) is never drawn."""
        u = torch.rand(
            self.p, per_domain, generator=generator, dtype=torch.float64, device=self.device
        )
        x = torch.searchsorted(self._cdf[which], u, right=True).clamp_(
            max=self.N - 1
        )  # (p, per_domain)
        if self._domain is None or self._domain.numel() != x.numel():
            self._domain = torch.arange(self.p, device=self.device).repeat_interleave(
                per_domain
            )  # (B,)
        return x.reshape(-1), self._domain

    def sample(self, generator: torch.Generator, per_domain: int) -> GateBatch:
        x, domain = self._draw("P", generator, per_domain)
        return GateBatch(
            inputs=x, domain=domain, log_experts=self.log_E_T[x], log_p=self.log_P[domain, x]
        )

    def sample_experts(self, generator: torch.Generator, per_domain: int) -> GateBatch:
        x, domain = self._draw("E", generator, per_domain)
        return GateBatch(
            inputs=x, domain=domain, log_experts=self.log_E_T[x], in_support=self.in_S[x]
        )
