"""Hard random problems for the exact core (issue 9): tiny masses, exact zeros, leaking blocks.

One numpy builder shared by the hypothesis strategy `strategies.hard_problems` and by
`modgen-bench bench fuzz`, so the property tests and the fuzz draw the same families:

- ``sparse``: P and E from Dirichlet(alpha), alpha in [0.02, 0.1]: entries far below 1e-30 and
  exact zeros where the gamma draws underflow, in both P and E;
- ``mixed``: experts ``(1 - m) P + m Dirichlet`` with m up to 0.95 per expert;
- ``leaking``: domains with a block of zero columns on which the experts put mass;
- ``logmass``: masses log-uniform down to ``min_mass`` (1e-300 by default), a fraction exactly 0.
"""
from __future__ import annotations

import numpy as np

__all__ = ["HARD_FAMILIES", "dirichlet_rows", "hard_arrays"]

HARD_FAMILIES = ("sparse", "mixed", "leaking", "logmass")


def dirichlet_rows(rng: np.random.Generator, alpha: float, shape: tuple[int, int]) -> np.ndarray:
    """Rows from Dirichlet(alpha), exact even for alpha << 1.

    Gamma(alpha) is drawn in log space as ``log G' + log(U) / alpha`` with G' ~ Gamma(alpha + 1)
    and U ~ U(0, 1) (Marsaglia and Tsang's boost), then normalised by the row maximum: entries
    below ~1e-308 underflow to exact zeros, as they would for any float64 consumer.
    """
    log_g = np.log(rng.gamma(alpha + 1.0, size=shape)) + np.log(rng.uniform(size=shape)) / alpha
    w = np.exp(log_g - log_g.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _logmass_rows(rng, shape, min_mass: float, zeros: float) -> np.ndarray:
    w = 10.0 ** (rng.uniform(np.log10(min_mass), 0.0, size=shape))
    w[rng.uniform(size=shape) < zeros] = 0.0
    w[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] = 1.0   # no empty row
    return w / w.sum(axis=1, keepdims=True)


def _mix(rng, P, m_max: float, alpha_e: float) -> np.ndarray:
    m = rng.uniform(0.0, m_max, size=(P.shape[0], 1))
    return (1.0 - m) * P + m * dirichlet_rows(rng, alpha_e, P.shape)


def hard_arrays(rng: np.random.Generator, family: str, p: int, N: int, alpha: float = 0.05,
                m_max: float = 0.95, block: int = 1, min_mass: float = 1e-300,
                zeros: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(P, E), each (p, N) with rows summing to 1, from one of `HARD_FAMILIES`.

    ``alpha``: Dirichlet concentration of the sparse draws; ``m_max``: largest expert mixing
    weight; ``block``: zero columns of the leaking family (1 <= block < N); ``min_mass`` and
    ``zeros``: the smallest mass and the fraction of exact zeros of the logmass family.
    """
    if family == "sparse":
        P, E = dirichlet_rows(rng, alpha, (p, N)), dirichlet_rows(rng, alpha, (p, N))
    elif family == "mixed":
        P = dirichlet_rows(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        E = _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
    elif family == "leaking":
        if not 1 <= block < N:
            raise ValueError(f"block must be in [1, N - 1] (got {block}, N = {N})")
        P = dirichlet_rows(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        P[:, N - block:] = 0.0
        P[P.sum(axis=1) == 0, 0] = 1.0
        P /= P.sum(axis=1, keepdims=True)
        E = _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
        E = np.where(np.arange(N) >= N - block, np.maximum(E, 1e-3 * rng.uniform(size=(p, N))), E)
    elif family == "logmass":
        P = _logmass_rows(rng, (p, N), min_mass, zeros)
        E = _logmass_rows(rng, (p, N), min_mass, zeros) if rng.random() < 0.5 else \
            _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
    else:
        raise ValueError(f"unknown hard family '{family}'; choose one of {', '.join(HARD_FAMILIES)}")
    return P, E / E.sum(axis=1, keepdims=True)
