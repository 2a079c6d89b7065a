"""Algorithm 1 (algorithms/alg1.py): within 1e-3 of the exact value in its default budget."""

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.algorithms.alg1 import algorithm1
from modgen_bench.algorithms.harness import ALGORITHMS, exact_value, grade, run_method

CASES = [
    ("dirichlet", 0, {}, "domains"),
    ("dirichlet", 1, {"p": 5, "N": 60, "alpha": 0.3}, "domains"),
    ("overlap", 2, {"overlap": 0.9}, "domains"),
    ("disjoint", 3, {}, "domains"),
    ("face", 4, {}, "domains"),
    ("near_deterministic", 5, {}, "domains"),
    ("leaking", 6, {}, "union"),
    ("identical", 7, {}, "domains"),
]


@pytest.mark.parametrize("family,seed,kw,support", CASES)
def test_alg1_within_1e_3_of_the_exact_value(family, seed, kw, support):
    problem = instances.make(family, seed, **kw)
    res = algorithm1(problem, support=support)  # default budget
    g = grade(problem, res.gate, support, exact_value(problem, support))
    assert np.allclose(res.gate.sum(axis=1), 1) and np.all(res.gate >= 0)
    assert abs(g["Z"] - 1) < 1e-9  # iterates stay in G1
    assert -1e-9 <= g["suboptimality"] < 1e-3, g


def test_alg1_lam_approaches_the_least_favourable_mixture():
    from modgen_bench.exact import solve

    problem = instances.make("face", 0)
    res = algorithm1(problem)
    np.testing.assert_allclose(res.lam, solve(problem).lam, atol=1e-2)


def test_alg1_short_run_is_worse_than_a_long_one():
    """The grade can tell: 5 steps leave a visible gap that the default budget closes."""
    problem = instances.make("dirichlet", 0, p=4, N=40, alpha=0.3)
    short = run_method(problem, "alg1", steps=5)
    full = run_method(problem, "alg1")
    assert short.grade["suboptimality"] > 1e-3 > full.grade["suboptimality"]


def test_every_algorithm_is_registered_and_graded():
    problem = instances.make("dirichlet", 0, p=3, N=6)
    assert set(ALGORITHMS) == {"alg1", "spd", "doremi", "groupdro", "afl"}
    for name in ALGORITHMS:
        run = run_method(problem, name, steps=20, track=True, log_every=10)
        assert run.grade["suboptimality"] >= -1e-9
        assert {"worst_case_kl", "Z", "suboptimality"} <= set(run.history.columns)


def test_history_tracks_suboptimality_down():
    problem = instances.make("dirichlet", 0)
    h = run_method(problem, "alg1", track=True, steps=400, log_every=50).history
    assert h["suboptimality"].iloc[-1] < h["suboptimality"].iloc[0]
