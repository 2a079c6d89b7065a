"""`NewtonResult`: what every Newton path of the water-filling solver returns (its own module
so that the polishes built on `waterfill.InnerProblem`, e.g. `equalise`, return it without
importing the module that runs them)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NewtonResult"]


class NewtonResult(NamedTuple):
    """What a Newton path returns: the bound's lam, the best model q (on the support), the water
    level t at lam, KL(P[k] || q), the dual bound D(lam), iterations, and why it stopped
    (`budget.STOPS`)."""

    lam: np.ndarray
    q: np.ndarray
    t: float
    g: np.ndarray
    bound: float
    iterations: int
    stopped: str

    @property
    def gap(self) -> float:
        return float(self.g.max() - self.bound)
