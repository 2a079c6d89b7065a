"""Theory checks: every claim of the paper as an executable, falsifiable check (PAPER.md section 3).

Each claim module exposes ``CLAIM`` (its id) and ``check(n, seed, fig_dir) -> list[Verdict]``
(one verdict per reading). `run_checks` is what `modgen-bench check` calls: it runs the chosen
claims, then each claim's plausible wrong variants (`mutations`: the checks' power), prints the
verdict table and writes verdicts.csv, verdicts.json, mutations.csv, report.md, index.html and
every counterexample as a problem file that `modgen-bench solve` re-runs.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

from modgen_bench.errors import UserError
from modgen_bench.registry import Registry

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

__all__ = ["CLAIMS", "run_checks", "run_claims", "Verdict"]

log = logging.getLogger(__name__)

#: claim id -> check(n, seed, fig_dir); exact claims first, in the order the report shows them.
CLAIMS = Registry("claim")
for _module in (lemma1, identities, prop2, static_barrier, thm3, lam_star, prior, thm6, thm7, thm9):
    CLAIMS.register(_module.CLAIM)(_module.check)


def run_claims(claims, instances: int, seed: int, fig_dir=None) -> tuple[list, dict]:
    """Run the named claims (all when empty); returns (verdicts, seconds per claim).

    Unknown names raise a KeyError listing the valid ones before anything runs.
    """
    names = list(claims) or list(CLAIMS)
    checks = {name: CLAIMS[name] for name in names}
    verdicts, seconds = [], {}
    for name, check in checks.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # The searches probe degenerate points (inf/NaN objectives, inaccurate fallback
            # solves); every number kept carries its own certificate instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            verdicts += check(instances, seed, fig_dir)
        seconds[name] = time.perf_counter() - t0
        log.info(f"  {name}: {seconds[name]:.1f} s")
    return verdicts, seconds


def run_checks(
    claims,
    instances: int = 200,
    seed: int = 0,
    out: str = "reports/checks",
    strict: bool = False,
    expected=None,
) -> int:
    """`modgen-bench check`: run, print the verdict table, write the report.

    Verdicts are compared with the pinned expectation (`expected.load`; ``expected`` is its path,
    default theory_checks/expected.json): a budget below the one that found a pinned
    counterexample is warned about before the run, every differing verdict after it. Exit code 0
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
    verdicts, seconds = run_claims(claims, instances, seed, fig_dir)
    t0 = time.perf_counter()
    results = mutations.power(names, mutations.BUDGET, seed)
    mutations.attach_power(verdicts, results)
    seconds_power = time.perf_counter() - t0
    log.info(f"  mutation power ({len(results)} mutations): {seconds_power:.1f} s")
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
