"""`modgen-bench bench fuzz`: solve many random hard instances and count wrong answers (issue 9).

Families (each drawn with both support conventions):

- ``sparse``: P and E Dirichlet with concentration in [0.02, 0.1] (entries far below 1e-30 and
  exact zeros after underflow, in both P and E);
- ``mixed``: experts ``(1 - m) P + m Dirichlet`` with m up to 0.95 (P sparse or not);
- ``leaking``: domains with a block of zero columns on which the experts put mass.

p is drawn in [2, 16] and N in [3, 80]. Each answer is graded by its own solver-independent
certificate: ``optimal`` with ``duality_gap > tol`` is counted as *wrong*, and so is an optimal
answer whose value or gap is not finite.
"""
from __future__ import annotations

import time

import numpy as np

from ..problem import DiscreteProblem, ProblemError

__all__ = ["FAMILIES", "random_instance", "fuzz", "format_counts"]

FAMILIES = ("sparse", "mixed", "leaking")


def _dirichlet(rng: np.random.Generator, alpha: float, size: tuple[int, int]) -> np.ndarray:
    """Rows from Dirichlet(alpha); exact zeros where every gamma draw underflows.

    Gamma(alpha) draws for tiny alpha are sampled as log-gammas (``log G = log G' + log(U)/alpha``
    with G' ~ Gamma(alpha + 1)), normalised with logsumexp, so entries down to 1e-300 and zeros
    both occur. A row whose every entry underflows is replaced by a vertex at its largest entry.
    """
    log_g = np.log(rng.gamma(alpha + 1.0, size=size)) + np.log(rng.uniform(size=size)) / alpha
    log_g -= log_g.max(axis=1, keepdims=True)
    w = np.exp(log_g)
    return w / w.sum(axis=1, keepdims=True)


def _renormalise(A: np.ndarray) -> np.ndarray:
    return A / A.sum(axis=1, keepdims=True)


def random_instance(rng: np.random.Generator, family: str | None = None
                    ) -> tuple[DiscreteProblem, str, str]:
    """(problem, support, description) of one random hard instance (see the module docstring)."""
    family = family or FAMILIES[rng.integers(len(FAMILIES))]
    support = ("domains", "union")[rng.integers(2)]
    p = int(rng.integers(2, 17))
    N = int(rng.integers(3, 81))
    alpha = float(rng.uniform(0.02, 0.1))
    desc = f"{family} p={p} N={N} alpha={alpha:.3g}"
    if family == "sparse":
        P = _dirichlet(rng, alpha, (p, N))
        E = _dirichlet(rng, float(rng.uniform(0.02, 0.1)), (p, N))
    elif family == "mixed":
        P = _dirichlet(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        m = rng.uniform(0.0, 0.95, size=(p, 1))
        E = (1 - m) * P + m * _dirichlet(rng, float(rng.uniform(0.02, 1.0)), (p, N))
        desc += f" m<={m.max():.3g}"
    elif family == "leaking":
        block = int(rng.integers(1, max(2, N // 2)))
        P = _dirichlet(rng, alpha if rng.random() < 0.5 else 1.0, (p, N))
        P[:, N - block:] = 0.0
        P[P.sum(axis=1) == 0, 0] = 1.0
        P = _renormalise(P)
        m = rng.uniform(0.0, 0.95, size=(p, 1))
        E = (1 - m) * P + m * _dirichlet(rng, float(rng.uniform(0.02, 1.0)), (p, N))
        desc += f" block={block} m<={m.max():.3g}"
    else:
        raise ValueError(f"unknown fuzz family '{family}'; choose one of {', '.join(FAMILIES)}")
    return DiscreteProblem.from_arrays(_renormalise(P), _renormalise(E)), support, desc


def fuzz(instances: int = 1000, seed: int = 0, method: str = "waterfill", tol: float | None = None,
         progress=None) -> dict:
    """Solve ``instances`` random hard instances; count statuses and wrong answers.

    Returns {"counts": {optimal, inaccurate, infeasible, wrong, invalid}, "worst_gap" (largest |duality gap|),
    "worst_instance", "seconds_per_instance", "solvers": {path: count}, "wrong_instances"}.
    """
    from ..exact import solve
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(("optimal", "inaccurate", "infeasible", "wrong", "invalid"), 0)
    solvers: dict[str, int] = {}
    worst_gap, worst = 0.0, ""
    wrong: list[str] = []
    solve_seconds = 0.0
    it = range(instances) if progress is None else progress(range(instances))
    for i in it:
        try:
            problem, support, desc = random_instance(rng)
        except ProblemError:           # a draw whose rows fail validation (should not happen)
            counts["invalid"] += 1
            continue
        kw = {} if tol is None else {"tol": tol}
        t0 = time.perf_counter()
        sol = solve(problem, method=method, support=support, **kw)
        solve_seconds += time.perf_counter() - t0
        counts[sol.status] = counts.get(sol.status, 0) + 1
        if sol.status == "infeasible":
            continue
        solvers[sol.solver] = solvers.get(sol.solver, 0) + 1
        gap = sol.duality_gap
        if sol.status == "optimal":
            limit = sol.extra.get("tol", 1e-9 + 1e-9 * abs(sol.value))
            if not (np.isfinite(sol.value) and np.isfinite(gap) and gap <= limit):
                counts["wrong"] += 1
                wrong.append(f"#{i} {desc} support={support}: value {sol.value} gap {gap}")
        size = abs(gap) if np.isfinite(gap) else np.inf     # NaN and inf count as the worst
        if size > worst_gap:
            worst_gap, worst = size, f"#{i} {desc} support={support} status={sol.status}"
    return {"counts": counts, "worst_gap": float(worst_gap), "worst_instance": worst,
            "seconds_per_instance": solve_seconds / max(instances, 1), "solvers": solvers,
            "wrong_instances": wrong[:20], "instances": instances, "seed": seed}


def format_counts(res: dict) -> str:
    """The human-readable report of `fuzz`."""
    c = res["counts"]
    lines = [f"fuzz: {res['instances']} instances (seed {res['seed']}): "
             + "  ".join(f"{k} {v}" for k, v in c.items()),
             f"worst certificate: {res['worst_gap']:.3g}  ({res['worst_instance']})",
             f"time per instance: {1e3 * res['seconds_per_instance']:.3f} ms",
             "answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(res["solvers"].items()))]
    lines += [f"WRONG {w}" for w in res["wrong_instances"]]
    return "\n".join(lines)
