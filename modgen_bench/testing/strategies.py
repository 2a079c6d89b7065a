"""Public hypothesis strategies for the objects of PAPER.md section 1 (STYLE.md, "Hypothesis").

Distributions on N outcomes, mixtures ``lam`` on the p-simplex, problems (P, E) with overlapping
or disjoint domain supports and optionally leaking experts, row-stochastic gates, and the hard
problems of `modgen_bench.testing.hard` (masses down to 1e-300, exact zeros, p up to 16, N up to
200, leaking zero blocks). Every
strategy takes keyword bounds; every array it draws is float64 and validated by
`DiscreteProblem.from_arrays` where it is a problem.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..problem import DiscreteProblem
from .hard import EDGE_FAMILIES, HARD_FAMILIES, edge_arrays, hard_arrays

__all__ = [
    "distributions",
    "mixtures",
    "problems",
    "disjoint_problems",
    "gates",
    "hard_problems",
    "edge_problems",
    "MIN_MASS",
    "EXPERT_SUPPORTS",
    "HARD_FAMILIES",
    "EDGE_FAMILIES",
]

#: Smallest positive mass a drawn entry can have before renormalisation (keeps logs finite).
MIN_MASS = 1e-3


def _simplex(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


@st.composite
def distributions(
    draw, N: int | None = None, min_N: int = 1, max_N: int = 8, support_size: int | None = None
) -> np.ndarray:
    """A distribution on N outcomes (N drawn in [min_N, max_N] when not given).

    ``support_size`` outcomes (all N when None), chosen at random, carry mass at least
    MIN_MASS / support_size each; the others are exactly 0.
    """
    if N is None:
        N = draw(st.integers(min_N, max_N))
    k = N if support_size is None else support_size
    if not 1 <= k <= N:
        raise ValueError(f"support_size must be in [1, N] (got {k}, N = {N})")
    w = draw(st.lists(st.floats(MIN_MASS, 1.0), min_size=k, max_size=k))
    where = draw(st.permutations(range(N)))[:k]
    out = np.zeros(N)
    out[list(where)] = _simplex(w)
    return out


@st.composite
def mixtures(
    draw, p: int | None = None, min_p: int = 1, max_p: int = 5, vertex: bool | None = None
) -> np.ndarray:
    """A mixture lam on the p-simplex; ``vertex=True`` draws a vertex e_k, ``False`` an interior
    point, ``None`` either (vertices, edges and the interior all occur)."""
    if p is None:
        p = draw(st.integers(min_p, max_p))
    if vertex is None:
        vertex = draw(st.booleans())
    if vertex:
        lam = np.zeros(p)
        lam[draw(st.integers(0, p - 1))] = 1.0
        return lam
    return _simplex(draw(st.lists(st.floats(MIN_MASS, 1.0), min_size=p, max_size=p)))


EXPERT_SUPPORTS = ("full", "domains")


@st.composite
def problems(
    draw,
    min_p: int = 1,
    max_p: int = 4,
    min_N: int = 2,
    max_N: int = 8,
    overlap: bool = True,
    experts: str = "full",
    leak: float = 0.0,
) -> DiscreteProblem:
    """A problem with p domains and p experts over N outcomes.

    ``overlap=True``: each domain has a random support (supports may overlap or not);
    ``overlap=False``: domains on disjoint blocks (needs N >= p; N is raised to p if needed).
    ``experts="full"``: experts with full support; ``"domains"``: expert k lives exactly on
    domain k's support (disjoint experts when the domains are disjoint).
    ``leak`` > 0 adds one outcome outside X0 on which every expert puts mass in
    [MIN_MASS * leak, leak] (the regime of Lemma 1's flaw).
    """
    if experts not in EXPERT_SUPPORTS:
        raise ValueError(f"unknown experts '{experts}'; choose one of {', '.join(EXPERT_SUPPORTS)}")
    p = draw(st.integers(min_p, max_p))
    N = max(draw(st.integers(min_N, max_N)), p)
    if overlap:
        P = np.stack(
            [draw(distributions(N=N, support_size=draw(st.integers(1, N)))) for _ in range(p)]
        )
    else:
        blocks = np.array_split(np.arange(N), p)
        P = np.zeros((p, N))
        for k, b in enumerate(blocks):
            P[k, b] = draw(distributions(N=len(b)))
    E = np.stack([draw(distributions(N=N)) for _ in range(p)])
    if experts == "domains":
        E = np.where(P > 0, E, 0.0)
        E /= E.sum(axis=1, keepdims=True)
    if leak > 0:
        out = np.array([draw(st.floats(MIN_MASS * leak, leak)) for _ in range(p)])
        P = np.hstack([P, np.zeros((p, 1))])
        E = np.hstack([E * (1.0 - out)[:, None], out[:, None]])
    return DiscreteProblem.from_arrays(P, E)


def disjoint_problems(
    min_p: int = 1,
    max_p: int = 4,
    min_N: int = 2,
    max_N: int = 8,
    experts: str = "domains",
    leak: float = 0.0,
):
    """`problems` with disjoint domain supports (the setting of the static-gate barrier);
    by default each expert on its own domain's block (disjoint experts)."""
    return problems(
        min_p=min_p,
        max_p=max_p,
        min_N=min_N,
        max_N=max_N,
        overlap=False,
        experts=experts,
        leak=leak,
    )


@st.composite
def gates(draw, N: int, p: int, constant: bool = False) -> np.ndarray:
    """A row-stochastic gate of shape (N, p); ``constant=True`` repeats one row (a static gate)."""
    if constant:
        row = draw(mixtures(p=p, vertex=False))
        return np.broadcast_to(row, (N, p)).copy()
    return np.stack([draw(mixtures(p=p)) for _ in range(N)])


@st.composite
def hard_problems(
    draw,
    min_p: int = 2,
    max_p: int = 16,
    min_N: int = 3,
    max_N: int = 200,
    families=HARD_FAMILIES,
    min_mass: float = 1e-300,
) -> DiscreteProblem:
    """A problem from one of `HARD_FAMILIES` (`modgen_bench.testing.hard.hard_arrays`).

    Hypothesis draws the family, p, N and the family's parameters (Dirichlet concentration in
    [0.02, 0.1], expert mixing weight up to 0.95, the leaking block, the smallest mass down to
    ``min_mass`` and the fraction of exact zeros) plus a seed; numpy draws the p x N entries from
    that seed, so an example is cheap and shrinks towards small p, N and benign parameters.
    """
    family = draw(st.sampled_from(list(families)))
    p = draw(st.integers(min_p, max_p))
    N = draw(st.integers(max(min_N, 2), max_N))
    kw = {
        "alpha": draw(st.floats(0.02, 0.1)),
        "m_max": draw(st.floats(0.0, 0.95)),
        "block": draw(st.integers(1, max(1, N // 2))),
        "min_mass": 10.0 ** -draw(st.floats(0.0, -np.log10(min_mass))),
        "zeros": draw(st.floats(0.0, 0.5)),
    }
    seed = draw(st.integers(0, 2**32 - 1))
    P, E = hard_arrays(np.random.default_rng(seed), family, p, N, **kw)
    return DiscreteProblem.from_arrays(P, E)


@st.composite
def edge_problems(
    draw,
    min_p: int = 1,
    max_p: int = 64,
    min_N: int = 1,
    max_N: int = 200,
    families=EDGE_FAMILIES,
    max_round: float = 5e-7,
) -> DiscreteProblem:
    """A problem from one of `EDGE_FAMILIES` (`modgen_bench.testing.hard.edge_arrays`): rows
    summing to 1 only within up to ``max_round`` (<= 1e-6, the accepted input tolerance), lo = hi,
    tight ceilings, Zipf masses, duplicated domains, experts equal to the domains; p from 1 to 64
    and N from 1 by default. Hypothesis draws the family, sizes, the rounding (log-uniform from
    1e-12) and a seed; numpy draws the entries."""
    family = draw(st.sampled_from(list(families)))
    p = draw(st.integers(min_p, max_p))
    N = draw(st.integers(min_N, max_N))
    round_to = 10.0 ** -draw(st.floats(-np.log10(max_round), 12.0))
    seed = draw(st.integers(0, 2**32 - 1))
    P, E = edge_arrays(
        np.random.default_rng(seed),
        family,
        p,
        N,
        round_to=round_to,
        zipf=draw(st.floats(1.0, 2.0)),
        m_max=draw(st.floats(0.0, 0.95)),
    )
    return DiscreteProblem.from_arrays(P, E)
