"""Seeded generators of discrete problems: the instance families every suite draws from.

Each generator takes ``rng`` (a `numpy.random.Generator` or an int seed) and keyword sizes, and
returns a validated `DiscreteProblem`. Families (DESIGN.md, theory checks and benchmarks):

- ``dirichlet``: P[k] ~ Dirichlet(alpha); experts E[k] = (1 - noise) P[k] + noise * Dirichlet(1).
- ``overlap``: domains share a common component with weight ``overlap`` in [0, 1].
- ``disjoint``: domains on disjoint blocks of outcomes; experts on the same blocks, or leaking.
- ``identical``: every domain equal (experts still differ).
- ``near_deterministic``: each domain puts 1 - delta on one outcome.
- ``leaking``: experts put mass ``leak`` outside X0 (the regime where Lemma 1 can fail).
- ``face``: the least-favourable mixture lies on a face of the simplex (one lam*[k] = 0).
"""

from __future__ import annotations

import numpy as np

from .problem import DiscreteProblem

__all__ = [
    "FAMILIES",
    "make",
    "dirichlet",
    "overlap",
    "disjoint",
    "identical",
    "near_deterministic",
    "leaking",
    "face",
    "rng_of",
]


def rng_of(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _experts(rng, P, noise):
    """E[k] = (1 - noise) P[k] + noise * U[k], U[k] ~ Dirichlet(1) over all outcomes."""
    U = rng.dirichlet(np.ones(P.shape[1]), size=P.shape[0])
    return (1.0 - noise) * P + noise * U


def _normalise(A):
    return A / A.sum(axis=1, keepdims=True)


def dirichlet(
    rng=0, p: int = 3, N: int = 20, alpha: float = 1.0, noise: float = 0.2
) -> DiscreteProblem:
    rng = rng_of(rng)
    P = rng.dirichlet(np.full(N, alpha), size=p)
    return DiscreteProblem.from_arrays(P, _normalise(_experts(rng, P, noise)))


def overlap(
    rng=0, p: int = 3, N: int = 20, overlap: float = 0.5, noise: float = 0.2
) -> DiscreteProblem:
    rng = rng_of(rng)
    common = rng.dirichlet(np.ones(N))
    own = rng.dirichlet(np.full(N, 0.3), size=p)
    P = overlap * common + (1.0 - overlap) * own
    return DiscreteProblem.from_arrays(P, _normalise(_experts(rng, P, noise)))


def disjoint(
    rng=0, p: int = 3, N: int = 21, noise: float = 0.2, leak: float = 0.0
) -> DiscreteProblem:
    """Domains on disjoint blocks; experts on their own block (leak = 0) or leaking mass leak
    uniformly over the other blocks (so the experts are then not disjoint)."""
    rng = rng_of(rng)
    if N < p:
        raise ValueError(f"disjoint needs N >= p (got N={N}, p={p})")
    blocks = np.array_split(np.arange(N), p)
    P = np.zeros((p, N))
    E = np.zeros((p, N))
    for k, b in enumerate(blocks):
        P[k, b] = rng.dirichlet(np.ones(len(b)))
        E[k, b] = (1 - noise) * P[k, b] + noise * rng.dirichlet(np.ones(len(b)))
        others = np.setdiff1d(np.arange(N), b)
        if leak > 0 and len(others):
            E[k] *= 1 - leak
            E[k, others] += leak / len(others)
    return DiscreteProblem.from_arrays(P, _normalise(E))


def identical(rng=0, p: int = 3, N: int = 20, noise: float = 0.3) -> DiscreteProblem:
    rng = rng_of(rng)
    P = np.repeat(rng.dirichlet(np.ones(N))[None, :], p, axis=0)
    return DiscreteProblem.from_arrays(P, _normalise(_experts(rng, P, noise)))


def near_deterministic(
    rng=0, p: int = 3, N: int = 20, delta: float = 1e-3, noise: float = 0.2
) -> DiscreteProblem:
    rng = rng_of(rng)
    P = delta * rng.dirichlet(np.ones(N), size=p)
    P[np.arange(p), rng.choice(N, size=p, replace=N < p)] += 1.0 - delta
    return DiscreteProblem.from_arrays(_normalise(P), _normalise(_experts(rng, P, noise)))


def leaking(
    rng=0, p: int = 3, N: int = 20, support: int = 10, leak: float = 0.2, noise: float = 0.1
) -> DiscreteProblem:
    """Domains live on the first ``support`` outcomes; experts leak ``leak`` of their mass
    onto the remaining N - support outcomes (outside X0)."""
    rng = rng_of(rng)
    if not 1 <= support < N:
        raise ValueError(f"leaking needs 1 <= support < N (got support={support}, N={N})")
    P = np.zeros((p, N))
    P[:, :support] = rng.dirichlet(np.ones(support), size=p)
    E = np.zeros((p, N))
    E[:, :support] = (1 - leak) * _normalise(_experts(rng, P[:, :support], noise))
    E[:, support:] = leak * rng.dirichlet(np.ones(N - support), size=p)
    return DiscreteProblem.from_arrays(P, _normalise(E))


def face(rng=0, p: int = 3, N: int = 20, alpha: float = 1.0, noise: float = 0.2) -> DiscreteProblem:
    """lam* on a face: the last domain is the average of the others and has a perfect expert, so
    by convexity its KL stays below the others' at the optimum and lam*[-1] = 0."""
    rng = rng_of(rng)
    if p < 3:
        raise ValueError(f"face needs p >= 3 (got p={p})")
    P = rng.dirichlet(np.full(N, alpha), size=p - 1)
    E = _normalise(_experts(rng, P, noise))
    avg = P.mean(axis=0, keepdims=True)
    return DiscreteProblem.from_arrays(np.vstack([P, avg]), np.vstack([E, avg]))


FAMILIES = {
    "dirichlet": dirichlet,
    "overlap": overlap,
    "disjoint": disjoint,
    "identical": identical,
    "near_deterministic": near_deterministic,
    "leaking": leaking,
    "face": face,
}


def make(family: str, rng=0, **sizes) -> DiscreteProblem:
    """Draw one problem of a named family; an unknown name lists the valid ones."""
    if family not in FAMILIES:
        raise ValueError(f"unknown instance family '{family}'; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[family](rng, **sizes)
