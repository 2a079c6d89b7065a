"""`modgen-bench bench fuzz`: solve many random hard instances and count wrong answers.

Families: those of `modgen_bench.testing.hard` (sparse Dirichlet(0.02-0.1) P and E, experts
``(1 - m) P + m Dirichlet`` with m up to 0.95, leaking zero blocks, log-uniform masses down to
1e-300 with exact zeros; rounded row sums, lo = hi, tight ceilings, Zipf masses, duplicated
domains, experts equal to the domains), each with both support conventions; p from 1 to 64 and
N from 1 to 20,000 (`_size`: mostly small). An ``optimal`` answer is *wrong* unless it passes
`_really_optimal`: finite value and gap, gap within tol, and a model that sums to 1 whose KL,
recomputed by `divergences.kl`, is the value. An ``infeasible`` label is *wrong* unless the
floor and ceiling sums (`math.fsum`, independent of the solver) or an uncovered outcome say so
(`expected_infeasible`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..gates import FEAS_TOL
from ..problem import DiscreteProblem, ProblemError
from ..testing.hard import ALL_FAMILIES, hard_arrays

__all__ = ["FAMILIES", "random_instance", "fuzz", "format_counts", "expected_infeasible"]

FAMILIES = ALL_FAMILIES


def _size(rng: np.random.Generator) -> tuple[int, int]:
    """(p, N): p in [2, 16], N in [3, 80] four times in five; otherwise p in [1, 64] with N in
    [1, 400], or (one in fifty) N up to 20,000 with p up to 8."""
    u = rng.random()
    if u < 0.8:
        return int(rng.integers(2, 17)), int(rng.integers(3, 81))
    if u < 0.98:
        return int(rng.integers(1, 65)), int(rng.integers(1, 401))
    return int(rng.integers(1, 9)), int(rng.integers(1, 20_001))


def expected_infeasible(problem: DiscreteProblem, support: str) -> bool | None:
    """Whether G1 is empty or every gate's KL infinite, from exact sums (`math.fsum`) of the
    floor and ceiling over the support; None when a sum lies within 1e-13 of a threshold (the
    solver's float sums may fall either way there)."""
    P, E = problem.P, problem.E
    seen = (P > 0).any(axis=0)
    mask = seen | (E > 0).any(axis=0) if support == "union" else seen
    lo, hi = E.min(axis=0)[mask], E.max(axis=0)[mask]
    if (seen & ~(E > 0).any(axis=0)).any():
        return True
    floor, ceiling = math.fsum(lo), math.fsum(hi)
    edges = (floor - (1 + FEAS_TOL), (1 - FEAS_TOL) - ceiling)
    if any(abs(e) <= 1e-13 for e in edges):
        return None
    return any(e > 0 for e in edges)


def random_instance(
    rng: np.random.Generator, family: str | None = None
) -> tuple[DiscreteProblem, str, str]:
    """(problem, support, description) of one random hard instance: a family of
    `modgen_bench.testing.hard`, (p, N) by `_size`, either support convention."""
    family = family or FAMILIES[rng.integers(len(FAMILIES))]
    support = ("domains", "union")[rng.integers(2)]
    p, N = _size(rng)
    if family == "leaking":
        N = max(N, 2)
    kw = {
        "alpha": float(rng.uniform(0.02, 0.1)),
        "m_max": float(rng.uniform(0.0, 0.95)),
        "block": int(rng.integers(1, max(2, N // 2))),
        "min_mass": float(10.0 ** -rng.uniform(30, 300)),
        "zeros": float(rng.uniform(0, 0.5)),
        "round_to": float(10.0 ** -rng.uniform(6.3, 12)),
        "zipf": float(rng.uniform(1, 2)),
    }
    P, E = hard_arrays(rng, family, p, N, **kw)
    desc = f"{family} p={p} N={N} " + " ".join(f"{k}={v:.3g}" for k, v in kw.items())
    return DiscreteProblem.from_arrays(P, E), support, desc


def _really_optimal(problem: DiscreteProblem, sol) -> bool:
    """An `optimal` answer checked from scratch, without the solver's own arithmetic: value and
    gap finite, gap within the tolerance, the model a distribution on the support (sum 1 within
    1e-9) and max_k KL(P[k] || model) by `divergences.kl` equal to the value."""
    from ..divergences import kl

    tol = 1e-9 + 1e-9 * abs(sol.value) if np.isfinite(sol.value) else 0.0
    if not (
        np.isfinite(sol.value) and np.isfinite(sol.duality_gap) and abs(sol.duality_gap) <= tol
    ):
        return False
    if abs(sol.model.sum() - 1.0) > 1e-9 or sol.model.min() < 0:
        return False
    return bool(abs(kl(problem.P, sol.model).max() - sol.value) <= 1e-9 * (1 + abs(sol.value)))


@dataclass
class _Tally:
    """Running totals of a fuzz run: statuses, solver paths, the worst gap, the slowest solve and
    the wrong answers."""

    counts: dict = field(
        default_factory=lambda: dict.fromkeys(
            ("optimal", "inaccurate", "infeasible", "wrong", "invalid"), 0
        )
    )
    solvers: dict = field(default_factory=dict)
    worst_gap: float = 0.0
    worst: str = ""
    wrong: list = field(default_factory=list)
    solve_seconds: float = 0.0
    slowest: tuple = (0.0, "")

    def interim(self, done: int, seconds: float) -> str:
        """The interim log line after ``done`` instances (a long run leaves a trace)."""
        return (
            f"fuzz: {done} done in {seconds:.0f} s: "
            + "  ".join(f"{k} {v}" for k, v in self.counts.items())
            + f"  worst gap {self.worst_gap:.3g}"
            + f"  slowest {self.slowest[0]:.3f} s"
        )

    def timed(self, took: float, where: str) -> None:
        """Add one solve's seconds; ``where`` names it if it is the slowest so far."""
        self.solve_seconds += took
        if took > self.slowest[0]:
            self.slowest = (took, where)

    def grade(self, i: int, problem: DiscreteProblem, support: str, desc: str, sol) -> bool:
        """Count one answer and check it; True when it is inaccurate or wrong (worth saving)."""
        self.counts[sol.status] = self.counts.get(sol.status, 0) + 1
        label = expected_infeasible(problem, support)
        if label is not None and label != (sol.status == "infeasible"):
            self.counts["wrong"] += 1
            self.wrong.append(
                f"#{i} {desc} support={support}: status {sol.status}, but the exact "
                f"floor/ceiling sums say {'in' if label else ''}feasible"
            )
        if sol.status == "infeasible":
            return False
        self.solvers[sol.solver] = self.solvers.get(sol.solver, 0) + 1
        gap = sol.duality_gap
        bad = sol.status == "inaccurate"
        if sol.status == "optimal" and not _really_optimal(problem, sol):
            self.counts["wrong"] += 1
            bad = True
            self.wrong.append(
                f"#{i} {desc} support={support}: value {sol.value} gap {gap} "
                f"model sum {sol.model.sum()!r}"
            )
        size = abs(gap) if np.isfinite(gap) else np.inf  # NaN and inf count as the worst
        if size > self.worst_gap:
            self.worst_gap, self.worst = size, f"#{i} {desc} support={support} status={sol.status}"
        return bad


def _save_failure(folder, problem: DiscreteProblem, seed: int, i: int, status: str, support: str):
    """Save an inaccurate or wrong instance as a problem file named after the run and answer."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = "inaccurate" if status == "inaccurate" else "wrong"
    problem.save(folder / f"fuzz-{seed}-{i}-{tag}-{support}.json")


def _summary(t: _Tally, instances: int, seed: int, t_start: float) -> dict:
    """The result dict of `fuzz` from its final tally."""
    return {
        "counts": t.counts,
        "worst_gap": float(t.worst_gap),
        "worst_instance": t.worst,
        "seconds_per_instance": t.solve_seconds / max(instances, 1),
        "solvers": t.solvers,
        "worst_seconds": t.slowest[0],
        "slowest_instance": t.slowest[1],
        "wall_seconds": time.perf_counter() - t_start,
        "wrong_instances": t.wrong[:20],
        "instances": instances,
        "seed": seed,
    }


def fuzz(
    instances: int = 1000,
    seed: int = 0,
    method: str = "waterfill",
    tol: float | None = None,
    progress=None,
    report_every: int = 0,
    log=None,
    save_failures=None,
) -> dict:
    """Solve ``instances`` random hard instances; count statuses and wrong answers.

    ``save_failures``: a folder where every inaccurate or wrong instance is saved as
    ``fuzz-<seed>-<i>-<status>-<support>.json`` (a problem file: `modgen-bench solve FILE
    --support SUPPORT` re-runs it).

    Returns {"counts": {optimal, inaccurate, infeasible, wrong, invalid}, "worst_gap" (largest
    |duality gap|), "worst_instance", "seconds_per_instance", "worst_seconds" (slowest solve),
    "slowest_instance", "solvers": {path: count}, "wrong_instances"}.
    """
    from ..exact import (
        conic,  # noqa: F401  (cvxpy's one-off import is no solve's time)
        solve,
    )

    rng = np.random.default_rng(seed)
    t = _Tally()
    kw = {} if tol is None else {"tol": tol}
    it = range(instances) if progress is None else progress(range(instances))
    t_start = time.perf_counter()
    for i in it:
        if report_every and log and i and i % report_every == 0:  # interim counts
            log(t.interim(i, time.perf_counter() - t_start))
        try:
            problem, support, desc = random_instance(rng)
        except ProblemError:  # a draw whose rows fail validation (should not happen)
            t.counts["invalid"] += 1
            continue
        t0 = time.perf_counter()
        sol = solve(problem, method=method, support=support, **kw)
        t.timed(time.perf_counter() - t0, f"#{i} {desc} support={support} status={sol.status}")
        if t.grade(i, problem, support, desc, sol) and save_failures is not None:
            _save_failure(save_failures, problem, seed, i, sol.status, support)
    return _summary(t, instances, seed, t_start)


def format_counts(res: dict) -> str:
    """The human-readable report of `fuzz`."""
    c = res["counts"]
    lines = [
        f"fuzz: {res['instances']} instances (seed {res['seed']}): "
        + "  ".join(f"{k} {v}" for k, v in c.items()),
        f"worst certificate: {res['worst_gap']:.3g}  ({res['worst_instance']})",
        f"time per instance: {1e3 * res['seconds_per_instance']:.3f} ms (solve only); "
        f"wall {res.get('wall_seconds', float('nan')):.0f} s in all",
        f"slowest solve: {res.get('worst_seconds', float('nan')):.3f} s "
        f"({res.get('slowest_instance', '')})",
        "answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(res["solvers"].items())),
    ]
    lines += [f"WRONG {w}" for w in res["wrong_instances"]]
    return "\n".join(lines)
