"""Exact Euclidean projection onto the box-and-simplex set {lo <= q <= hi, sum q = 1}.

Used by Algorithm 1 (the gate's model q lives in the envelope box with sum_S q = 1, PAPER.md
section 2, "Reduction") and by lam rules restricted to a box-shaped Lambda (PAPER.md section 4.3).

KKT: the projection of y is q = clip(y - tau, lo, hi) with the scalar tau solving
f(tau) = sum_i clip(y_i - tau, lo_i, hi_i) = 1. f is continuous, non-increasing and piecewise
linear with breakpoints {y_i - hi_i} and {y_i - lo_i}; we sort the breakpoints, bisect over their
indices for the bracketing pair, and solve the linear piece in closed form (exact up to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["project_box_simplex", "BoxLambda"]


def _f(y, lo, hi, tau):
    return torch.clamp(y - tau, lo, hi).sum()


def project_box_simplex(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """argmin_q ||q - y||_2 over {lo <= q <= hi, sum q = 1}; all tensors (n,); needs
    sum lo <= 1 <= sum hi."""
    if bool(lo.sum() > 1 + 1e-12) or bool(hi.sum() < 1 - 1e-12) or bool((lo > hi).any()):
        raise ValueError(
            "box-and-simplex set is empty: need lo <= hi and sum lo <= 1 <= sum hi "
            f"(sum lo = {float(lo.sum()):.6g}, sum hi = {float(hi.sum()):.6g})"
        )
    b = torch.sort(torch.cat([y - hi, y - lo])).values  # (2n,) f(b[0]) = sum hi, f(b[-1]) = sum lo
    i, j = 0, b.numel() - 1  # invariant: f(b[i]) >= 1 >= f(b[j])
    while j - i > 1:
        m = (i + j) // 2
        if _f(y, lo, hi, b[m]) >= 1:
            i = m
        else:
            j = m
    fi, fj = _f(y, lo, hi, b[i]), _f(y, lo, hi, b[j])
    tau = b[i] if fi == fj else b[i] + (fi - 1) * (b[j] - b[i]) / (fi - fj)
    return torch.clamp(y - tau, lo, hi)


@dataclass
class BoxLambda:
    """Lambda = {lam in the simplex, lo <= lam <= hi} (PAPER.md section 4.3, prior knowledge)."""

    lo: tuple
    hi: tuple

    def project(self, lam: torch.Tensor) -> torch.Tensor:
        lo = torch.as_tensor(self.lo, dtype=lam.dtype, device=lam.device)
        hi = torch.as_tensor(self.hi, dtype=lam.dtype, device=lam.device)
        return project_box_simplex(lam, lo, hi)
