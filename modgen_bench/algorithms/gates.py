"""Parametric gates for discrete problems, read by SPD (PAPER.md section 4, "SPD").

A gate maps outcome ids (B,) to log g(x, .) (B, p), rows log-softmax normalised.

- ``table``: one free logit per (outcome, domain); can represent every gate, so SPD's only error
  is optimisation and sampling. Its gradient is sparse (only the batch's rows), and SPD then
  steps with `torch.optim.SparseAdam`, so a step costs O(batch p), not O(N p).
- ``linear``: a linear-softmax gate on fixed random outcome features phi(x) in R^d (seeded),
  log g(x, .) = log_softmax(W phi(x) + b). A restricted class: its exact optimum can sit above
  the minimax value V*, which the grade then shows as suboptimality.

Both start at zero logits, i.e. the uniform constant gate g = 1/p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

__all__ = ["GATES", "TableGate", "LinearGate", "make_gate", "gate_table"]

GATES = Registry("gate")


@GATES.register("table")
class TableGate(nn.Module):
    """Tabular logits: log g(x, .) = log_softmax(theta[x]); ``sparse`` gradients by default."""

    def __init__(self, N: int, p: int, seed: int = 0, sparse: bool = True):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(N, p))  # (N, p)
        self.sparse_grad = sparse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(x, self.logits, sparse=self.sparse_grad)  # (B, p)
        return torch.log_softmax(rows, dim=-1)


@GATES.register("linear")
class LinearGate(nn.Module):
    """log g(x, .) = log_softmax(W phi(x) + b), phi(x) ~ N(0, I_d / d) fixed by ``seed``."""

    def __init__(self, N: int, p: int, seed: int = 0, d: int = 8):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("features", torch.randn(N, d, generator=gen) / d**0.5)  # (N, d)
        self.linear = nn.Linear(d, p)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.linear(self.features[x]), dim=-1)  # (B, p)


def make_gate(name: str, N: int, p: int, seed: int = 0, **kw) -> nn.Module:
    """Build a registered gate; an unknown name lists the valid ones."""
    return GATES[name](N, p, seed=seed, **kw)


@torch.no_grad()
def gate_table(gate: nn.Module, N: int):
    """The (N, p) numpy gate g(x, k) over every outcome, in float64, for the exact grade."""
    device = next(gate.parameters()).device
    log_g = gate(torch.arange(N, device=device))
    return torch.exp(log_g.double()).cpu().numpy()
