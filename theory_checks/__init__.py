"""Theory checks: every claim of the paper as an executable, falsifiable check (PAPER.md section 3).

Each claim module exposes ``CLAIM`` (its id) and ``check(n, seed, fig_dir) -> list[Verdict]``
(one verdict per reading). `run_checks` is what `modgen-bench check` calls: it runs the chosen
claims and each claim's plausible wrong variants (`mutations`: the checks' power) as tasks of one
pool of worker processes (`run_all`), prints the verdict table and writes verdicts.csv,
verdicts.json, mutations.csv, report.md, index.html and every counterexample as a problem file
that `modgen-bench solve` re-runs.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import NamedTuple

from modgen_bench.errors import UserError
from modgen_bench.registry import Registry
from modgen_bench.threads import blas_threads

from . import (
    identities,
    lam_star,
    lemma1,
    mutations,
    prior,
    prop2,
    static_barrier,
    thm3,
    thm6,
    thm7,
    thm9,
)
from .verdict import Verdict

__all__ = [
    "CLAIMS",
    "DEFAULT_INSTANCES",
    "ClaimsRun",
    "run_all",
    "run_checks",
    "run_claims",
    "Verdict",
]

log = logging.getLogger(__name__)

#: random instances per claim and reading by default (`check --instances`): 10x what the checks
#: afforded before they were vectorised, in less time
DEFAULT_INSTANCES = 2000

#: claim id -> check(n, seed, fig_dir); exact claims first, in the order the report shows them.
CLAIMS = Registry("claim")
for _module in (lemma1, identities, prop2, static_barrier, thm3, lam_star, prior, thm6, thm7, thm9):
    CLAIMS.register(_module.CLAIM)(_module.check)


def _run_claim(name: str, instances: int, seed: int, fig_dir) -> tuple[list, float]:
    """One claim's check and its seconds (in a worker process when run in parallel)."""
    t0 = time.perf_counter()
    with blas_threads(1), warnings.catch_warnings():
        # The searches probe degenerate points (inf/NaN objectives, inaccurate fallback
        # solves); every number kept carries its own certificate instead.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        verdicts = CLAIMS[name](instances, seed, fig_dir)
    return verdicts, time.perf_counter() - t0


def _run_power(name: str, budget: int, seed: int) -> tuple[list, float]:
    t0 = time.perf_counter()
    with blas_threads(1):
        return mutations.power([name], budget, seed), time.perf_counter() - t0


def _tasks(tasks, jobs: int | None) -> list:
    """Run (function, *args) tasks, in order in this process when ``jobs`` is 1, else in
    joblib's loky worker processes (``jobs`` None: one per core); results in task order.
    Every task runs with one BLAS thread (`threads.blas_threads`): the checks' matrices are
    small, and a BLAS split over more threads sums in another order, so the same count
    everywhere keeps the numbers of a worker equal to those of this process."""
    if jobs == 1:
        return [fn(*args) for fn, *args in tasks]
    from joblib import Parallel, cpu_count, delayed

    n_jobs = jobs or cpu_count()
    return Parallel(n_jobs=n_jobs, backend="loky")(delayed(fn)(*args) for fn, *args in tasks)


class ClaimsRun(NamedTuple):
    """What `run_all` found: verdicts in claim order, seconds per claim, the mutation results
    (`mutations.power`, in MUTATIONS order) and the seconds they took (summed over claims)."""

    verdicts: list
    seconds: dict
    mutation_results: list
    power_seconds: float


def run_all(
    claims, instances: int, seed: int, fig_dir=None, jobs: int | None = None, power_budget=None
) -> ClaimsRun:
    """Run the named claims (all when empty) and, with ``power_budget``, their mutations
    (`mutations.power` at that budget), as tasks of one pool of ``jobs`` processes (1: one after
    another here; None: one per core). Each check draws its instances from (seed, claim) alone
    and each process has its own solve cache, so the answer is the same however it runs.
    Unknown names raise a KeyError listing the valid ones before anything runs."""
    names = list(claims) or list(CLAIMS)
    for name in names:
        CLAIMS[name]
    tasks = [(_run_claim, name, instances, seed, fig_dir) for name in names]
    if power_budget is not None:
        mutated = [n for n in names if any(m.claim == n for m in mutations.MUTATIONS)]
        tasks += [(_run_power, name, power_budget, seed) for name in mutated]
    done = _tasks(tasks, jobs)
    verdicts, seconds = [], {}
    for name, (found, secs) in zip(names, done[: len(names)], strict=True):
        verdicts += found
        seconds[name] = secs
        log.info(f"  {name}: {secs:.1f} s")
    results = [r for found, _ in done[len(names) :] for r in found]
    results.sort(key=lambda r: mutations.MUTATIONS.index(r.mutation))
    return ClaimsRun(verdicts, seconds, results, sum(secs for _, secs in done[len(names) :]))


def run_claims(
    claims, instances: int, seed: int, fig_dir=None, jobs: int | None = None
) -> tuple[list, dict]:
    """Run the named claims (all when empty) in ``jobs`` processes (`run_all`); returns
    (verdicts, seconds per claim)."""
    run = run_all(claims, instances, seed, fig_dir, jobs)
    return run.verdicts, run.seconds


def run_checks(
    claims,
    instances: int = DEFAULT_INSTANCES,
    seed: int = 0,
    out: str = "reports/checks",
    strict: bool = False,
    expected=None,
    jobs: int | None = None,
) -> int:
    """`modgen-bench check`: run, print the verdict table, write the report.

    Verdicts are compared with the pinned expectation (`expected.load`; ``expected`` is its path,
    default theory_checks/expected.json): a budget below the one that found a pinned
    counterexample is warned about before the run, every differing verdict after it. The claims
    and their mutations run in ``jobs`` worker processes (`run_claims`; None: one per core).
    Exit code 0
    when the checks ran (a failing claim is a finding, not an error); with ``strict``, 1 when a
    verdict differs from the pin.
    """
    from . import expected as pins
    from .report import print_table, write_outputs

    if instances < 1:
        raise UserError(f"--instances must be >= 1 (got {instances})")
    for name in claims:
        CLAIMS[name]  # an unknown name fails before anything is written
    try:
        pinned = pins.load(expected)
    except FileNotFoundError:
        if strict or expected is not None:  # a pin asked for must exist
            raise
        pinned = None
    names = list(claims) or list(CLAIMS)
    for message in pins.budget_warnings(names, instances, pinned) if pinned else ():
        log.warning(f"warning: {message}")
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    verdicts, seconds, results, seconds_power = run_all(
        names, instances, seed, fig_dir, jobs=jobs, power_budget=mutations.BUDGET
    )
    mutations.attach_power(verdicts, results)
    log.info(f"  mutation power ({len(results)} mutations): {seconds_power:.1f} s")
    log.info(f"  all claims and mutations: {time.perf_counter() - t0:.1f} s wall")
    write_outputs(
        out,
        verdicts,
        seconds,
        mutation_results=results,
        instances=instances,
        seed=seed,
        mutation_budget=mutations.BUDGET,
    )
    print_table(verdicts)
    print(f"\nwrote {out / 'verdicts.csv'}, verdicts.json, report.md, index.html")
    diffs = pins.differences(verdicts, pinned) if pinned else []
    for line in diffs:
        log.warning(f"differs from the pinned expectation: {line}")
    if strict and diffs:
        log.error(
            f"check --strict: {len(diffs)} verdict(s) differ from {expected or pins.EXPECTED}"
        )
        return 1
    return 0
