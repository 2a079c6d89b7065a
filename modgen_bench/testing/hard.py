"""Hard random problems for the exact core: tiny masses, exact zeros, leaking blocks.

One numpy builder shared by the hypothesis strategy `strategies.hard_problems` and by
`modgen-bench bench fuzz`, so the property tests and the fuzz draw the same families:

- ``sparse``: P and E from Dirichlet(alpha), alpha in [0.02, 0.1]: entries far below 1e-30 and
  exact zeros where the gamma draws underflow, in both P and E;
- ``mixed``: experts ``(1 - m) P + m Dirichlet`` with m up to 0.95 per expert;
- ``leaking``: domains with a block of zero columns on which the experts put mass;
- ``logmass``: masses log-uniform down to ``min_mass`` (1e-300 by default), a fraction exactly 0;

and the tight and tolerance-edge families, where rounded real data lands:

- ``rounded``: every row of P and E scaled by 1 + d, |d| <= ``round_to`` (rows that sum to 1 only
  within the accepted 1e-6): floors above 1 (G1 empty from below) and ceilings below 1 occur;
- ``pinned``: every expert the same row e (lo = hi), e's sum off 1 by up to ``round_to``;
- ``tight``: experts equal up to 1e-13 relative noise on a full support while the domains are
  blind to some outcomes: the ceiling sums to 1 within rounding (the nu = 0 branch);
- ``zipf``: Zipf masses (exponent 1..2, random ranks) for P and the experts' noise;
- ``duplicated``: domains (and experts) repeated, so lam* is not unique;
- ``equal``: the experts are the domains (E = P).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HARD_FAMILIES",
    "EDGE_FAMILIES",
    "ALL_FAMILIES",
    "dirichlet_rows",
    "hard_arrays",
    "edge_arrays",
]

HARD_FAMILIES = ("sparse", "mixed", "leaking", "logmass")
EDGE_FAMILIES = ("rounded", "pinned", "tight", "zipf", "duplicated", "equal")
ALL_FAMILIES = HARD_FAMILIES + EDGE_FAMILIES


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
    w[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] = 1.0  # no empty row
    return w / w.sum(axis=1, keepdims=True)


def _mix(rng, P, m_max: float, alpha_e: float) -> np.ndarray:
    m = rng.uniform(0.0, m_max, size=(P.shape[0], 1))
    return (1.0 - m) * P + m * dirichlet_rows(rng, alpha_e, P.shape)


def _zipf_rows(rng, shape, s: float) -> np.ndarray:
    """Rows of Zipf masses 1 / rank^s, ranks in a random order per row."""
    ranks = np.argsort(rng.uniform(size=shape), axis=1) + 1.0
    w = ranks**-s
    return w / w.sum(axis=1, keepdims=True)


def _scaled(rng, A: np.ndarray, round_to: float) -> np.ndarray:
    """Each row times 1 + d, d uniform in [-round_to, round_to] (a row sum off by rounding)."""
    return A * (1.0 + rng.uniform(-round_to, round_to, size=(A.shape[0], 1)))


def edge_arrays(
    rng: np.random.Generator,
    family: str,
    p: int,
    N: int,
    m_max: float = 0.95,
    round_to: float = 5e-7,
    zipf: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(P, E) from one of `EDGE_FAMILIES`; rows sum to 1 within ``round_to`` (<= 1e-6, the
    accepted input tolerance) for ``rounded`` and ``pinned``, to rounding otherwise."""
    if family == "rounded":
        P = dirichlet_rows(rng, 1.0, (p, N))
        E = P.copy() if rng.random() < 0.5 else _mix(rng, P, m_max, 1.0)
        return _scaled(rng, P, round_to), _scaled(rng, E, round_to)
    if family == "pinned":
        P = dirichlet_rows(rng, float(rng.choice([0.1, 1.0])), (p, N))
        e = _scaled(rng, dirichlet_rows(rng, 1.0, (1, N)), round_to)
        return P, np.repeat(e, p, axis=0)
    if family == "tight":
        P = dirichlet_rows(rng, 1.0, (p, N))
        blind = rng.uniform(size=N) < rng.uniform(0.0, 0.5)
        blind[rng.integers(N)] = False
        P[:, blind] = 0.0
        P[P.sum(axis=1) == 0, np.flatnonzero(~blind)[0]] = 1.0
        e = dirichlet_rows(rng, 1.0, (1, N))
        E = e * (1.0 + 1e-13 * rng.standard_normal((p, N)))
        return P / P.sum(axis=1, keepdims=True), E / E.sum(axis=1, keepdims=True)
    if family == "zipf":
        P = _zipf_rows(rng, (p, N), zipf)
        m = rng.uniform(0.0, m_max, size=(p, 1))
        return P, (1.0 - m) * P + m * _zipf_rows(rng, (p, N), zipf)
    if family == "duplicated":
        base = dirichlet_rows(rng, float(rng.choice([0.05, 1.0])), (max(1, p // 2), N))
        P = base[rng.integers(len(base), size=p)]
        P[: len(base)] = base
        E = (
            _mix(rng, P, m_max, 1.0)
            if rng.random() < 0.5
            else np.repeat(_mix(rng, base, m_max, 1.0)[:1], p, axis=0)
        )
        return P, E / E.sum(axis=1, keepdims=True)
    if family == "equal":
        P = dirichlet_rows(rng, float(rng.choice([0.05, 1.0])), (p, N))
        return P, P.copy()
    raise ValueError(f"unknown edge family '{family}'; choose one of {', '.join(EDGE_FAMILIES)}")


def hard_arrays(
    rng: np.random.Generator,
    family: str,
    p: int,
    N: int,
    alpha: float = 0.05,
    m_max: float = 0.95,
    block: int = 1,
    min_mass: float = 1e-300,
    zeros: float = 0.2,
    round_to: float = 5e-7,
    zipf: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(P, E), each (p, N) with rows summing to 1, from one of `HARD_FAMILIES`.

    ``alpha``: Dirichlet concentration of the sparse draws; ``m_max``: largest expert mixing
    weight; ``block``: zero columns of the leaking family (1 <= block < N); ``min_mass`` and
    ``zeros``: the smallest mass and the fraction of exact zeros of the logmass family;
    ``round_to`` and ``zipf``: see `edge_arrays` (any of `EDGE_FAMILIES` is passed on to it).
    """
    if family in EDGE_FAMILIES:
        return edge_arrays(rng, family, p, N, m_max=m_max, round_to=round_to, zipf=zipf)
    if family == "sparse":
        P, E = dirichlet_rows(rng, alpha, (p, N)), dirichlet_rows(rng, alpha, (p, N))
    elif family == "mixed":
        P = dirichlet_rows(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        E = _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
    elif family == "leaking":
        if not 1 <= block < N:
            raise ValueError(f"block must be in [1, N - 1] (got {block}, N = {N})")
        P = dirichlet_rows(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        P[:, N - block :] = 0.0
        P[P.sum(axis=1) == 0, 0] = 1.0
        P /= P.sum(axis=1, keepdims=True)
        E = _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
        E = np.where(np.arange(N) >= N - block, np.maximum(E, 1e-3 * rng.uniform(size=(p, N))), E)
    elif family == "logmass":
        P = _logmass_rows(rng, (p, N), min_mass, zeros)
        E = (
            _logmass_rows(rng, (p, N), min_mass, zeros)
            if rng.random() < 0.5
            else _mix(rng, P, m_max, float(rng.uniform(0.02, 1.0)))
        )
    else:
        raise ValueError(f"unknown hard family '{family}'; choose one of {', '.join(ALL_FAMILIES)}")
    return P, E / E.sum(axis=1, keepdims=True)
