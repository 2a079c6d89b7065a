"""`modgen-bench bench fuzz`: solve many random hard instances and count wrong answers (issue 9).

Families: those of `modgen_bench.testing.hard` (sparse Dirichlet(0.02-0.1) P and E, experts
``(1 - m) P + m Dirichlet`` with m up to 0.95, leaking zero blocks, log-uniform masses down to
1e-300 with exact zeros), each with both support conventions; p in [2, 16], N in [3, 80].
An ``optimal`` answer is *wrong* unless it passes `_really_optimal`: finite value and gap, gap
within tol, and a model that sums to 1 whose KL, recomputed by `divergences.kl`, is the value.
"""
from __future__ import annotations

import time

import numpy as np

from ..problem import DiscreteProblem, ProblemError
from ..testing.hard import HARD_FAMILIES, hard_arrays

__all__ = ["FAMILIES", "random_instance", "fuzz", "format_counts"]

FAMILIES = HARD_FAMILIES


def random_instance(rng: np.random.Generator, family: str | None = None
                    ) -> tuple[DiscreteProblem, str, str]:
    """(problem, support, description) of one random hard instance: a family of
    `modgen_bench.testing.hard`, p in [2, 16], N in [3, 80], either support convention."""
    family = family or FAMILIES[rng.integers(len(FAMILIES))]
    support = ("domains", "union")[rng.integers(2)]
    p, N = int(rng.integers(2, 17)), int(rng.integers(3, 81))
    kw = {"alpha": float(rng.uniform(0.02, 0.1)), "m_max": float(rng.uniform(0.0, 0.95)),
          "block": int(rng.integers(1, max(2, N // 2))),
          "min_mass": float(10.0 ** -rng.uniform(30, 300)), "zeros": float(rng.uniform(0, 0.5))}
    P, E = hard_arrays(rng, family, p, N, **kw)
    desc = f"{family} p={p} N={N} " + " ".join(f"{k}={v:.3g}" for k, v in kw.items())
    return DiscreteProblem.from_arrays(P, E), support, desc


def _really_optimal(problem: DiscreteProblem, sol) -> bool:
    """An `optimal` answer checked from scratch, without the solver's own arithmetic: value and
    gap finite, gap within the tolerance, the model a distribution on the support (sum 1 within
    1e-9) and max_k KL(P[k] || model) by `divergences.kl` equal to the value."""
    from ..divergences import kl
    tol = 1e-9 + 1e-9 * abs(sol.value) if np.isfinite(sol.value) else 0.0
    if not (np.isfinite(sol.value) and np.isfinite(sol.duality_gap) and abs(sol.duality_gap) <= tol):
        return False
    if abs(sol.model.sum() - 1.0) > 1e-9 or sol.model.min() < 0:
        return False
    return bool(abs(kl(problem.P, sol.model).max() - sol.value) <= 1e-9 * (1 + abs(sol.value)))


def fuzz(instances: int = 1000, seed: int = 0, method: str = "waterfill", tol: float | None = None,
         progress=None, report_every: int = 0, log=None, save_failures=None) -> dict:
    """Solve ``instances`` random hard instances; count statuses and wrong answers.

    ``save_failures``: a folder where every inaccurate or wrong instance is saved as
    ``fuzz-<seed>-<i>-<status>-<support>.json`` (a problem file: `modgen-bench solve FILE
    --support SUPPORT` re-runs it).

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
    t_start = time.perf_counter()
    for i in it:
        if report_every and log and i and i % report_every == 0:   # interim counts: a long run
            log(f"fuzz: {i} done in {time.perf_counter() - t_start:.0f} s: "   # leaves a trace
                + "  ".join(f"{k} {v}" for k, v in counts.items()) + f"  worst gap {worst_gap:.3g}")
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
        bad = sol.status == "inaccurate"
        if sol.status == "optimal" and not _really_optimal(problem, sol):
            counts["wrong"] += 1
            bad = True
            wrong.append(f"#{i} {desc} support={support}: value {sol.value} gap {gap} "
                         f"model sum {sol.model.sum()!r}")
        if bad and save_failures is not None:
            from pathlib import Path
            folder = Path(save_failures)
            folder.mkdir(parents=True, exist_ok=True)
            tag = "inaccurate" if sol.status == "inaccurate" else "wrong"
            problem.save(folder / f"fuzz-{seed}-{i}-{tag}-{support}.json")
        size = abs(gap) if np.isfinite(gap) else np.inf     # NaN and inf count as the worst
        if size > worst_gap:
            worst_gap, worst = size, f"#{i} {desc} support={support} status={sol.status}"
    return {"counts": counts, "worst_gap": float(worst_gap), "worst_instance": worst,
            "seconds_per_instance": solve_seconds / max(instances, 1), "solvers": solvers,
            "wall_seconds": time.perf_counter() - t_start,
            "wrong_instances": wrong[:20], "instances": instances, "seed": seed}


def format_counts(res: dict) -> str:
    """The human-readable report of `fuzz`."""
    c = res["counts"]
    lines = [f"fuzz: {res['instances']} instances (seed {res['seed']}): "
             + "  ".join(f"{k} {v}" for k, v in c.items()),
             f"worst certificate: {res['worst_gap']:.3g}  ({res['worst_instance']})",
             f"time per instance: {1e3 * res['seconds_per_instance']:.3f} ms (solve only); "
             f"wall {res.get('wall_seconds', float('nan')):.0f} s in all",
             "answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(res["solvers"].items()))]
    lines += [f"WRONG {w}" for w in res["wrong_instances"]]
    return "\n".join(lines)
