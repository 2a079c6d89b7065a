"""lam-update rules: the adversary's move in the robust game, one plug-in per method (PAPER.md
section 4).

Every rule keeps ``lam`` (the weights of the next loss ``sum_k lam[k] NLL_k``), takes one
``update(signal)`` per step with the (p,) per-domain signal chosen by the harness (``kl``,
``excess`` or ``nll``; see `spd.lam_signal`), and reports ``output()``: the lam it returns.
A rule with a published signal names it in ``native_signal`` (the harness uses it for the peer
methods). If a constraint set ``Lambda`` (an object with ``project(lam)``) is given, every update
is followed by the Euclidean projection onto it (PAPER.md section 4.3).

- ``eg`` (SPD, Algorithm 1): exponentiated gradient, lam <- lam * exp(eta * signal) / norm;
  returns the average of the iterates (the EG regret bound holds for the average).
- ``doremi`` (Xie et al. 2023, Alg. 1): EG with step 1 on the excess loss clipped at 0, then
  smoothing lam <- (1 - c) lam + c / p with c = 1e-3; returns the averaged weights.
- ``groupdro`` (Sagawa et al. 2020, Alg. 1): EG with step 0.01 on the raw loss; returns the last
  iterate.
- ``afl`` (Mohri et al. 2019, Agnostic Federated Learning): projected gradient ascent
  lam <- Proj_simplex(lam + eta * signal); returns the averaged iterates.
"""

from __future__ import annotations

import torch

from ..registry import Registry
from .projection import project_box_simplex

__all__ = ["LAM_RULES", "LamRule", "make_lam_rule"]

LAM_RULES = Registry("lam rule")


class LamRule:
    """Shared state: current lam, the running average, the optional projection onto Lambda."""

    native_signal: str | None = None

    def __init__(self, p: int, eta: float, Lambda=None, device="cpu", dtype=torch.float64):
        self.eta = eta
        self.Lambda = Lambda
        self.lam = torch.full((p,), 1.0 / p, device=device, dtype=dtype)
        if Lambda is not None:
            self.lam = Lambda.project(self.lam)
        self.lam_sum = torch.zeros_like(self.lam)
        self.t = 0

    def step(self, signal: torch.Tensor) -> torch.Tensor:
        """The new lam before the projection onto Lambda (each rule defines it)."""
        raise NotImplementedError

    def update(self, signal: torch.Tensor) -> None:
        signal = signal.detach().to(self.lam)
        lam = self.step(signal)
        self.lam = self.Lambda.project(lam) if self.Lambda is not None else lam
        self.lam_sum += self.lam
        self.t += 1

    def average(self) -> torch.Tensor:
        return self.lam_sum / self.t if self.t else self.lam.clone()

    def output(self) -> torch.Tensor:
        return self.average()


def _eg(lam: torch.Tensor, eta: float, signal: torch.Tensor) -> torch.Tensor:
    """lam * exp(eta * signal) / norm, in log space (softmax)."""
    return torch.softmax(torch.log(lam) + eta * signal, dim=0)


@LAM_RULES.register("eg")
class EG(LamRule):
    """SPD's and Algorithm 1's rule: EG ascent with step ``eta``, averaged iterates."""

    def step(self, signal):
        return _eg(self.lam, self.eta, signal)


@LAM_RULES.register("doremi")
class DoReMi(LamRule):
    """DoReMi: EG step 1 on max(excess, 0), smoothing c = 1e-3, averaged weights (no ``eta``)."""

    native_signal = "excess"
    STEP, SMOOTHING = 1.0, 1e-3

    def step(self, signal):
        lam = _eg(self.lam, self.STEP, torch.clamp(signal, min=0.0))
        return (1 - self.SMOOTHING) * lam + self.SMOOTHING / lam.numel()


@LAM_RULES.register("groupdro")
class GroupDRO(LamRule):
    """Group DRO: EG step 0.01 on the raw per-group loss, last iterate (``eta`` unused)."""

    native_signal = "nll"
    STEP = 0.01

    def step(self, signal):
        return _eg(self.lam, self.STEP, signal)

    def output(self):
        return self.lam.clone()


@LAM_RULES.register("afl")
class AFL(LamRule):
    """AFL: projected gradient ascent with step ``eta`` on the raw loss, averaged iterates."""

    native_signal = "nll"

    def step(self, signal):
        lam = self.lam + self.eta * signal
        if self.Lambda is not None:  # projected onto Lambda by `update`
            return lam
        zeros = torch.zeros_like(lam)
        return project_box_simplex(lam, zeros, torch.ones_like(lam))


def make_lam_rule(name: str, p: int, eta: float, Lambda=None, device="cpu") -> LamRule:
    """Build a registered rule; an unknown name lists the valid ones."""
    return LAM_RULES[name](p, eta, Lambda=Lambda, device=device)
