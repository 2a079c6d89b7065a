"""thm3 tallies a solve that did not certify as a solver failure (verdict inconclusive), the way
the other checks do, instead of skipping it."""

import numpy as np

from modgen_bench import exact, instances
from theory_checks import thm3
from theory_checks.verdict import Tally


def _uncertified(problem, support="union"):
    """`certified_solve` with a tolerance no answer meets: status inaccurate, gap inf."""
    sol = exact.solve(problem, method="waterfill", support=support, tol=-1.0)
    return _mark(sol)


def _mark(sol):
    sol.extra["gap"], sol.duality_gap = sol.duality_gap, float("inf")
    return sol


def test_record_counts_an_uncertified_solve_as_a_failure(monkeypatch):
    prob = instances.make("overlap", 3, p=3, N=12)
    monkeypatch.setattr(thm3, "certified_solve", _uncertified)
    b = thm3.Bound(prob, "union")
    assert b.sol.status == "inaccurate" and np.isnan(b.const)
    t = Tally("thm3", "r")
    thm3.record(t, b, np.random.default_rng(0), "overlap seed 3")
    v = t.verdict()
    assert (v.status, v.solver_failures, v.instances) == ("inconclusive", 1, 0)
    assert "overlap seed 3" in v.note


def test_record_tallies_a_certified_solve():
    prob = instances.make("overlap", 3, p=3, N=12)
    t = Tally("thm3", "r")
    thm3.record(t, thm3.Bound(prob, "union"), np.random.default_rng(0), "x", search=False)
    v = t.verdict()
    assert (v.status, v.solver_failures, v.instances) == ("holds", 0, 1)


def test_check_reports_solver_failures(monkeypatch):
    """Every third solve fails to certify: the random-instance readings say inconclusive and
    count them; before the fix they were skipped and the reading said holds."""
    calls = {"n": 0}
    real = thm3.certified_solve

    def flaky(problem, support="union"):
        calls["n"] += 1
        return _uncertified(problem, support) if calls["n"] % 3 == 0 else real(problem, support)

    monkeypatch.setattr(thm3, "certified_solve", flaky)
    monkeypatch.setattr(
        thm3,
        "certified_solve_many",  # the random instances, together
        lambda problems, support="union": [flaky(p, support) for p in problems],
    )
    for search in ("_search_tight", "_search_leaking"):  # Nelder-Mead searches: seconds each
        monkeypatch.setattr(thm3, search, lambda seed, tally: None)
    verdicts = {v.reading: v for v in thm3.check(1, seed=0)}
    union = verdicts["support=union (sigma in G1)"]
    assert union.solver_failures > 0 and union.status == "inconclusive"
    assert sum(v.solver_failures for v in verdicts.values()) > 0
