"""The time and iteration budget of a solve: every path stops at its iteration cap or the solve's
time limit and says which stopped it; `solve --time-limit` passes the limit on."""

import json
from pathlib import Path

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.cli import main
from modgen_bench.exact import solve
from modgen_bench.exact.budget import Budget, default_time_limit
from modgen_bench.exact.waterfill import InnerProblem, newton_path
from modgen_bench.problem import DiscreteProblem

HARD = Path(__file__).with_name("data_exact_fuzz0_13536.json")  # projected Newton stalls


def test_default_limit_grows_with_size_from_under_a_second():
    assert default_time_limit(8, 100) == default_time_limit(1, 1_000_000) < 1.0
    assert default_time_limit(8, 10_000_000) == 8 * default_time_limit(1, 10_000_000)


def test_a_path_says_it_stopped_at_its_iteration_cap():
    prob = instances.make("dirichlet", 0, p=6, N=50)
    inner = InnerProblem(prob)
    res = newton_path(inner, prob.p, lambda v: 0.0, budget=Budget(max_iter=1))
    assert res.stopped == "iterations" and res.iterations == 1
    res = newton_path(inner, prob.p, lambda v: 1e-9)
    assert res.stopped == "converged"


def test_an_expired_budget_stops_the_chain_and_the_answer_says_so():
    prob = DiscreteProblem.load(HARD)
    sol = solve(prob, time_limit=0.0)
    stops = [a["stopped"] for a in sol.extra["attempts"]]
    assert sol.status == "inaccurate" and stops == ["time"]
    assert "time limit" in sol.reason and np.isfinite(sol.extra["bound"][0])
    full = solve(prob, time_limit=60.0)
    assert full.optimal and len(full.extra["attempts"]) > 1
    assert all(
        s in ("stalled", "converged", "iterations")
        for s in (a["stopped"] for a in full.extra["attempts"])
    )


def test_cli_time_limit(capsys):
    assert main(["solve", str(HARD), "--json", "--time-limit", "0"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "inaccurate" and "time limit" in out["reason"]
    assert main(["solve", str(HARD), "--json", "--time-limit", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "optimal"


def test_a_path_gets_half_of_what_is_left_and_start_up_is_excluded_from_both():
    solve_budget = Budget.start(10.0)
    path = solve_budget.share(0.5)
    assert 4.0 < path.left() <= 5.0 and path.parent is solve_budget
    before = (path.deadline, solve_budget.deadline)
    with path.excluded():
        sum(i * i for i in range(200_000))  # some CPU time on this thread
    grown = (path.deadline - before[0], solve_budget.deadline - before[1])
    assert grown[0] > 0 and abs(grown[0] - grown[1]) <= 1e-9


def test_a_stalled_chain_leaves_time_for_the_conic_path(monkeypatch):
    """Domains support, p = 49, N = 282: the entropic path's equalisation polish certifies it;
    with that polish returning its seed unchanged (a stall), every water-filling path stalls and
    the log-space conic path certifies. Each path may spend half of what is left, so within the
    default budget the conic path still runs."""
    prob = DiscreteProblem.load(Path(__file__).with_name("data_exact_fuzz0_6417.json"))
    sol = solve(prob, support="domains")
    assert sol.optimal and sol.solver == "waterfill-entropic"
    monkeypatch.setattr(
        "modgen_bench.exact.waterfill.equalise", lambda inner, lam0, tol, seed, budget: seed
    )
    sol = solve(prob, support="domains")
    assert sol.optimal and sol.solver.startswith("CLARABEL-log")


@pytest.mark.parametrize("index,support", [("21372", "domains"), ("24872", "union")])
def test_large_p_fuzz_leftovers_certify_within_the_default_budget(index, support):
    """p = 59, N = 329 and p = 64, N = 231: projected Newton and the entropic path stall, the
    entropic restart certifies; the default budget (thread CPU time) leaves it the time (a
    process-time budget would count BLAS workers' spin and cut it)."""
    from modgen_bench.bench.fuzz import _really_optimal

    prob = DiscreteProblem.load(Path(__file__).with_name(f"data_exact_fuzz0_{index}.json"))
    sol = solve(prob, support=support)
    assert sol.optimal and _really_optimal(prob, sol)
