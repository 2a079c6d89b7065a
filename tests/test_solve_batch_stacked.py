"""`exact.stacked.solve_batch`: a stack of problems of one shape solved together gives, problem by
problem, the status and value of `solve`, with a certificate that holds when recomputed from
scratch (`InnerProblem.dual_bound` at the returned lam, `divergences.kl` of the model)."""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.bench.fuzz import _really_optimal
from modgen_bench.exact import solve, tolerance
from modgen_bench.exact.stacked import solve_batch, solve_many
from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing.hard import ALL_FAMILIES, hard_arrays

supports = st.sampled_from(["domains", "union"])


def _agree(problems, support, say=note):
    batch = solve_batch(problems, support=support)
    for prob, sol in zip(problems, batch, strict=True):
        ref = solve(prob, support=support)
        say(f"batch {sol.status} {sol.solver} {sol.value}; solve {ref.status} {ref.value}")
        assert sol.status == ref.status
        if sol.status == "infeasible":
            continue
        assert sol.optimal and _really_optimal(prob, sol)
        assert abs(sol.value - ref.value) <= tolerance(sol.value) + tolerance(ref.value)
        inner = InnerProblem(prob, support)
        again = inner.dual_bound(sol.lam, *inner.model(sol.lam))
        assert sol.value - again <= tolerance(sol.value)  # the certificate, recomputed
    return batch


@given(
    st.sampled_from(ALL_FAMILIES),
    st.integers(1, 16),
    st.integers(2, 60),
    supports,
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
)
def test_batch_answers_are_those_of_solve(family, p, N, support, seed, B):
    rng = np.random.default_rng(seed)
    problems = [
        DiscreteProblem.from_arrays(*hard_arrays(rng, family, p, N, block=1, round_to=1e-10))
        for _ in range(B)
    ]
    _agree(problems, support)


@pytest.mark.parametrize("family", ["dirichlet", "overlap", "disjoint"])
@pytest.mark.parametrize("support", ["domains", "union"])
def test_most_of_a_benign_stack_is_solved_in_the_batch(family, support):
    problems = [instances.make(family, s, p=6, N=40) for s in range(40)]
    batch = _agree(problems, support, print)
    assert sum(s.solver == "waterfill-batch" for s in batch) >= 30


def test_solve_many_groups_shapes_and_keeps_the_order():
    problems = [instances.make("dirichlet", s, p=2 + s % 3, N=10 + 5 * (s % 2)) for s in range(12)]
    sols = solve_many(problems, support="union")
    for prob, sol in zip(problems, sols, strict=True):
        assert sol.optimal and len(sol.model) == prob.N and len(sol.lam) == prob.p
        assert abs(sol.value - solve(prob, support="union").value) <= 2e-9


def test_batch_needs_one_shape():
    with pytest.raises(ValueError, match="one shape"):
        solve_batch(
            [instances.make("dirichlet", 0, p=2, N=5), instances.make("dirichlet", 0, p=3, N=5)]
        )
