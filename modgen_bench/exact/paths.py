"""The registry of exact solver paths: each path is one object, `exact._run` a loop over them.

A path takes a `PathContext` (the problem on its support, the stopping rule, the budget, the best
mixtures met so far) and returns a `PathResult` (model, lam, value, bound, iterations, path name)
or None when it does not apply. Every answer is graded by the one solver-independent certificate
in `exact._run`, never by the path. Adding a path is one file: define a function, decorate it
with `register_path`, import the file; `solve --method`, `bench exact` and the fallback chain
read the registry (`methods`, `chain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .budget import Budget

__all__ = [
    "PathResult",
    "PathContext",
    "SolverPath",
    "register_path",
    "unregister_path",
    "chain",
    "methods",
    "reference_methods",
    "PATHS",
    "ROLES",
]

#: ``main``: in its method's own chain; ``fallback``: only when its method serves as another's
#: fallback; ``polish``: at the end of every fallback chain, restarting from the best mixture so
#: far.
ROLES = ("main", "fallback", "polish")


@dataclass
class PathResult:
    """One path's answer. ``model``: q on the support (None: no model); ``lam``: the mixture of
    its bound; ``value``: max_k KL(P[k] || q) by the path (the core grades q again); ``bound``:
    D(lam) when the path computed it at ``lam`` from lam @ P (None: the core computes it);
    ``stopped``: why the path stopped (`budget.STOPS`); ``solver``: the backend that answered
    (defaults to ``path``)."""

    model: np.ndarray | None
    lam: np.ndarray | None
    value: float = math.nan
    bound: float | None = None
    iterations: int = 0
    path: str = ""
    per_domain_kl: np.ndarray | None = None
    stopped: str = "converged"
    solver: str = ""
    note: str = ""


@dataclass
class PathContext:
    """What a path may read: the problem, its support convention, the `InnerProblem`, the fixed
    mixture (None for the minimax problem), ``stop(value)`` (the gap at which to stop), the
    `Budget`, ``certify(q, lam)`` (the core's certificate of a candidate), and the mixtures of the
    best bound and of the least own gap met so far (None before any path answered)."""

    problem: object
    support: str
    inner: object
    lam_fixed: np.ndarray | None
    stop: Callable[[float], float]
    budget: Budget
    certify: Callable[[np.ndarray, np.ndarray], float]
    best_lam: np.ndarray | None = None
    pair_lam: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def fixed(self) -> bool:
        return self.lam_fixed is not None


@dataclass(frozen=True)
class SolverPath:
    """A registered path: its ``name`` (reported as the solver), the ``method`` it belongs to
    (`solve --method`), the problems it solves (``kinds``: "minimax", "fixed"), its ``rank``
    within its role and its ``role`` (`ROLES`); ``reference``: a slow reference method (bench
    exact limits its N)."""

    name: str
    method: str
    run: Callable[[PathContext], PathResult | None]
    kinds: frozenset = frozenset({"minimax", "fixed"})
    rank: float = 0.0
    role: str = "main"
    reference: bool = False


PATHS: dict[str, SolverPath] = {}


def register_path(
    name: str,
    method: str,
    kinds=("minimax", "fixed"),
    rank: float = 0.0,
    role: str = "main",
    reference: bool = False,
):
    """Decorator: register ``run(ctx) -> PathResult | None`` as the path ``name``."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}'; choose one of {', '.join(ROLES)}")

    def deco(run):
        PATHS[name] = SolverPath(name, method, run, frozenset(kinds), float(rank), role, reference)
        return run

    return deco


def unregister_path(name: str) -> None:
    """Remove a path (a test's toy path, say)."""
    PATHS.pop(name, None)


def methods() -> tuple[str, ...]:
    """The methods with a main path (`solve --method` choices), fast ones first, then the
    reference methods, each group in registration order (the fallback chain's order too)."""
    main = [p.method for p in PATHS.values() if p.role == "main"]
    ref = set(reference_methods())
    return tuple(dict.fromkeys([m for m in main if m not in ref] + [m for m in main if m in ref]))


def reference_methods() -> tuple[str, ...]:
    """Methods with a reference path (slow; `bench exact` limits their N)."""
    return tuple(dict.fromkeys(p.method for p in PATHS.values() if p.reference))


def _ranked(paths, kind: str) -> list[SolverPath]:
    return sorted((p for p in paths if kind in p.kinds), key=lambda p: p.rank)


def chain(method: str, kind: str, fallback: bool = True) -> list[SolverPath]:
    """The paths tried, in order: ``method``'s main paths; with ``fallback``, every other
    method's main and fallback paths (methods in registration order), then the polish paths."""
    all_paths = PATHS.values()
    out = _ranked((p for p in all_paths if p.method == method and p.role == "main"), kind)
    if not fallback:
        return out
    for other in methods():
        if other != method:
            out += _ranked(
                (p for p in all_paths if p.method == other and p.role in ("main", "fallback")), kind
            )
    return out + _ranked((p for p in all_paths if p.role == "polish"), kind)
