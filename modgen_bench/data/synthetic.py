"""The "conflicting successor" domains of PAPER.md section 5, with exact probabilities.

Data tokens are 0..V-1 (V = 100 in the paper); sequences are BOS-prefixed (BOS = V, see
`modgen_bench.models.transformer`) with ``length`` data tokens x_0..x_{L-1}. Two pure chains:

- A: x_0 ~ uniform, x_{t+1} = x_t + 1 mod V;   B: x_0 ~ uniform, x_{t+1} = x_t - 1 mod V.

So log P_A(x) = -log V if x is an A-chain and -inf otherwise (likewise B). Domain 0 is A;
domain 1 is B contaminated with a share ``contamination`` of A: P_1 = c P_A + (1 - c) P_B
(c = 0: clean; 0.5: the paper's 50-50 variant; 0.25: its 25-75 A-in-B variant). The union of the
supports X0 has 2V sequences (A- and B-chains differ once V >= 3 and L >= 2), so expectations,
KL to any mixture and normalisers over X0 are computed exactly by enumeration (`support`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["SuccessorTask", "CONTAMINATION"]

CONTAMINATION = {"clean": 0.0, "contam50": 0.5, "contam25": 0.25}  # share of A inside domain B


@dataclass(frozen=True)
class SuccessorTask:
    """Conflicting successor domains; ``p = 2`` domains, ``bos = vocab``, model vocabulary
    ``vocab + 1``."""

    vocab: int = 100
    length: int = 8
    contamination: float = 0.0
    p: int = 2

    def __post_init__(self):
        if self.vocab < 3:
            raise ValueError(
                f"vocab must be >= 3 so that the A- and B-chains differ (got {self.vocab})"
            )
        if self.length < 2:
            raise ValueError(f"length must be >= 2 data tokens (got {self.length})")
        if not 0.0 <= self.contamination < 1.0:
            raise ValueError(f"contamination must be in [0, 1) (got {self.contamination})")

    @property
    def bos(self) -> int:
        return self.vocab

    @property
    def mix(self) -> torch.Tensor:
        """(p, 2): domain k = mix[k, 0] P_A + mix[k, 1] P_B."""
        c = self.contamination
        return torch.tensor([[1.0, 0.0], [c, 1.0 - c]], dtype=torch.float64)

    def _check(self, idx):
        if idx.dim() != 2 or idx.shape[1] != self.length + 1:
            raise ValueError(
                f"sequences must have shape (n, {self.length + 1}) (BOS + {self.length} tokens), "
                f"got {tuple(idx.shape)}"
            )
        if (
            (idx[:, 0] != self.bos).any()
            or (idx[:, 1:] < 0).any()
            or (idx[:, 1:] >= self.vocab).any()
        ):
            raise ValueError(
                f"sequences must start with BOS={self.bos} followed by tokens in [0, {self.vocab})"
            )

    def chain_log_prob(self, idx: torch.Tensor) -> torch.Tensor:
        """(n, 2) float64: log P_A(x), log P_B(x) for BOS-prefixed sequences (n, length + 1)."""
        self._check(idx)
        step = (idx[:, 2:] - idx[:, 1:-1]) % self.vocab  # (n, length-1)
        ok = torch.stack(
            [(step == delta).all(dim=1) for delta in (1, self.vocab - 1)], dim=1
        )  # (n, 2)
        log_start = torch.tensor(-math.log(self.vocab), dtype=torch.float64)  # x_0 ~ uniform
        return torch.where(ok, log_start, torch.tensor(-math.inf, dtype=torch.float64))

    def log_prob(self, idx: torch.Tensor) -> torch.Tensor:
        """(n, p) float64: log P_k(x) = logsumexp_c(log mix[k, c] + log P_c(x))."""
        return torch.logsumexp(
            torch.log(self.mix)[None] + self.chain_log_prob(idx)[:, None, :], dim=-1
        )

    def mixture_log_prob(self, idx: torch.Tensor, lam) -> torch.Tensor:
        """(n,) float64: log P_lam(x) = logsumexp_k(log lam[k] + log P_k(x))."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return torch.logsumexp(torch.log(lam) + self.log_prob(idx), dim=-1)

    def _chains(self, start: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        t = torch.arange(self.length)
        body = (start[:, None] + direction[:, None] * t) % self.vocab  # (n, length)
        return torch.cat([torch.full((len(start), 1), self.bos), body], dim=1)  # (n, length + 1)

    def sample_mixture(self, weights, n: int, generator: torch.Generator) -> torch.Tensor:
        """n sequences (n, length + 1) from sum_k weights[k] P_k (CPU generator: same seed, same
        draw)."""
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (self.p,) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-9:
            raise ValueError(
                f"weights must be a distribution over the {self.p} domains (got {w.tolist()})"
            )
        chain_w = w @ self.mix  # (2,) P(A), P(B)
        is_b = torch.rand(n, generator=generator, dtype=torch.float64) < chain_w[1]
        start = torch.randint(self.vocab, (n,), generator=generator)
        return self._chains(start, torch.where(is_b, -1, 1))

    def sample(self, domain: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """n sequences from domain ``domain``."""
        if domain not in range(self.p):
            raise ValueError(f"domain must be in 0..{self.p - 1} (got {domain})")
        return self.sample_mixture(torch.eye(self.p, dtype=torch.float64)[domain], n, generator)

    def support(self) -> tuple[torch.Tensor, torch.Tensor]:
        """X0 enumerated: sequences (2V, length + 1) (A-chains, then B-chains) and W (2V, p) with
        W[i, k] = P_k(x_i): exact expectation weights for `modgen_bench.sequence.evaluate`."""
        start = torch.arange(self.vocab).repeat(2)
        direction = torch.cat(
            [torch.ones(self.vocab, dtype=torch.long), -torch.ones(self.vocab, dtype=torch.long)]
        )
        seqs = self._chains(start, direction)
        return seqs, self.log_prob(seqs).exp()
