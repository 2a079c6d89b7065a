"""The optimiser every training loop here uses: AdamW with the fused kernel where torch has one.

The models of the quick and CPU presets are small, so a step is bound by per-op overhead; the
default (foreach) AdamW issues about a dozen ops per parameter group and step, the fused kernel
one. Measured with `modgen-bench bench train --device cpu`: the fused optimiser is what brings
the project's loops level with a plain reference loop.
"""

from __future__ import annotations

import torch

__all__ = ["make_adamw"]


def make_adamw(params, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, lr, weight_decay, fused=True)``, or the default implementation
    where the fused kernel is unavailable (the parameters' device decides)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
