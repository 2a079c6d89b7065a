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


@given(
    st.sampled_from(sorted(instances.FAMILIES)),
    st.integers(3, 16),
    st.integers(16, 60),
    supports,
    st.integers(0, 2**32 - 1),
)
def test_batch_answers_are_those_of_solve_on_the_instance_families(family, p, N, support, seed):
    rng = np.random.default_rng(seed)
    _agree([instances.make(family, rng, p=p, N=N) for _ in range(6)], support)


def _stack(rng, p, N, B):
    return [
        DiscreteProblem.from_arrays(rng.dirichlet(np.ones(N), p), rng.dirichlet(np.ones(N), p))
        for _ in range(B)
    ]


@pytest.mark.parametrize("support", ["domains", "union"])
def test_tiny_masses_and_exact_zeros_in_a_stack(support):
    rng = np.random.default_rng(3)
    problems = _stack(rng, 4, 12, 8)
    for b, (scale, zeros) in enumerate([(1e-200, 0), (1e-140, 0), (0.0, 3), (1e-300, 2)]):
        P, E = problems[b].P.copy(), problems[b].E.copy()
        P[:, :3] *= scale
        E[:, zeros : zeros + 2] = 0.0
        problems[b] = DiscreteProblem.from_arrays(
            P / P.sum(axis=1, keepdims=True), E / E.sum(axis=1, keepdims=True)
        )
    _agree(problems, support, print)


@pytest.mark.parametrize("support", ["domains", "union"])
@pytest.mark.parametrize("p, N", [(1, 7), (5, 1), (1, 1), (2, 2)])
def test_one_domain_or_one_outcome(p, N, support):
    _agree(_stack(np.random.default_rng(p * 10 + N), p, N, 5), support, print)


@pytest.mark.parametrize("support", ["domains", "union"])
def test_infeasible_and_one_point_members_mixed_in(support):
    rng = np.random.default_rng(11)
    problems = _stack(rng, 3, 6, 8)
    P = problems[0].P
    e = rng.dirichlet(np.ones(6))
    blind = P.copy()
    blind[:, -1] = 0.0
    problems[1] = DiscreteProblem.from_arrays(P, np.repeat(e[None], 3, axis=0))  # lo = hi
    problems[3] = DiscreteProblem.from_arrays(P, np.full((3, 6), (1 + 5e-7) / 6))  # floor > 1
    leak = np.tile([0.0, 0.2, 0.2, 0.2, 0.2, 0.2], (3, 1))  # no expert covers outcome 0
    problems[5] = DiscreteProblem.from_arrays(P, leak)
    problems[6] = DiscreteProblem.from_arrays(
        blind / blind.sum(axis=1, keepdims=True), problems[6].E
    )
    batch = _agree(problems, support, print)
    assert [s.status for s in batch].count("infeasible") >= 2
    assert batch[1].solver != "waterfill-batch" and batch[0].solver == "waterfill-batch"


@given(st.integers(1, 12), st.integers(0, 2**32 - 1), st.floats(0.0, 0.8))
def test_batched_qp_steps_are_the_simplex_qp_minimiser(p, seed, face):
    from modgen_bench.exact.stacked import _qp_steps
    from modgen_bench.exact.waterfill import simplex_qp

    rng = np.random.default_rng(seed)
    B = 6
    A = rng.standard_normal((B, p, p)) * 10.0 ** rng.uniform(-3, 3, (B, 1, 1))
    Q = A @ A.transpose(0, 2, 1) + 1e-3 * np.eye(p)
    c = rng.standard_normal((B, p)) * 10.0 ** rng.uniform(-2, 2, (B, 1))
    lam = rng.dirichlet(np.ones(p), B)
    lam[rng.uniform(size=(B, p)) < face] = 0.0
    lam[lam.sum(axis=1) == 0, 0] = 1.0
    lam /= lam.sum(axis=1, keepdims=True)
    y = _qp_steps(Q, c, lam)
    for b in range(B):
        ref = simplex_qp(Q[b], c[b], lam[b])
        obj = lambda v, b=b: 0.5 * v @ Q[b] @ v - c[b] @ v  # noqa: E731
        note(f"b={b} y={y[b]} ref={ref}")
        assert y[b].min() >= 0 and abs(y[b].sum() - 1) <= 1e-12
        assert obj(y[b]) <= obj(ref) + 1e-9 * (1 + abs(obj(ref)))


def test_bench_batch_rows_agree_and_name_what_they_cannot_draw():
    from modgen_bench.bench.batch import bench_batch

    df = bench_batch(
        sizes=(8,), ps=(2, 3), B=6, families=("dirichlet", "face", "tight"), repeats=1, log=None
    )
    drawn = df[df["note"].isna()] if "note" in df else df
    assert len(drawn) == 3 * 2 * 2 - 2  # face cannot draw p = 2: one row saying so
    assert (drawn["agree"] == 6).all() and (drawn["ratio"] > 0).all()
    assert df.loc[df["family"] == "face", "note"].dropna().str.contains("p >= 3").all()


def test_cli_bench_exact_batch(capsys):
    from modgen_bench.cli import main

    args = ["bench", "exact", "--batch", "3", "--sizes", "6", "--ps", "3", "--repeats", "1"]
    assert main(args + ["--families", "dirichlet"]) == 0
    assert "agree 3/3" in capsys.readouterr().out
    assert main(args + ["--families", "nope"]) == 2
    assert "unknown instance families nope" in capsys.readouterr().err


@given(
    st.integers(1, 6),
    st.integers(1, 30),
    st.integers(1, 9),
    st.integers(1, 4),
    supports,
    st.integers(0, 2**32 - 1),
)
def test_blockwise_stack_and_hessian_are_those_of_each_problem(p, N, B, per_block, support, seed):
    """The stack is built `per_block` problems at a time (remainders included): every problem's
    P, X0, envelope and -H(P[k]) are its own, and the batched Hessian (F = M @ lam) is
    `InnerProblem.hessian_at` at the same mixture and level."""
    from unittest import mock

    from modgen_bench.exact import stacked

    rng = np.random.default_rng(seed)
    problems = _stack(rng, p, N, B)
    for b in range(0, B, 2):  # exact zeros: 0 log 0 = 0, outcomes off X0
        P = problems[b].P.copy()
        P[:, rng.uniform(size=N) < 0.3] = 0.0
        P[P.sum(axis=1) == 0, 0] = 1.0
        problems[b] = DiscreteProblem.from_arrays(P / P.sum(axis=1, keepdims=True), problems[b].E)
    with mock.patch.object(stacked, "CHUNK_BYTES", per_block * p * N * 8):
        stk = stacked._stacked(problems)
    el = stacked._eligible(stk, support)
    lam = rng.dirichlet(np.ones(p), B)
    s = stacked._State.at(
        stacked._Stack(stk.P, el.lo, el.hi, el.seen, stk.neg_entropy), lam, np.ones(B)
    )
    H = stacked._Stack(stk.P, el.lo, el.hi, el.seen, stk.neg_entropy).hessian(lam, s.a, s.t)
    for b, prob in enumerate(problems):
        P, E = prob.P, prob.E
        assert np.array_equal(stk.P[b], P) and np.array_equal(stk.seen[b], P.max(axis=0) > 0)
        assert np.array_equal(stk.e_min[b], E.min(axis=0))
        assert np.array_equal(stk.e_max[b], E.max(axis=0))
        logs = np.log(np.where(P > 0, P, 1.0))
        assert np.allclose(stk.neg_entropy[b], (P * logs).sum(axis=1), rtol=1e-12, atol=1e-15)
        if not (el.ok[b] and s.ok[b]):
            continue
        inner = InnerProblem(prob, support)
        ref = inner.hessian_at(inner.mix(lam[b]), s.t[b])
        # H = -M + F F'/total cancels (H lam = 0): rounding is relative to M = sum_free P P'/a
        r = s.a[b] * s.t[b]
        free = (r > el.lo[b]) & (r < el.hi[b])
        scale = (P[:, free] ** 2 / s.a[b, free]).sum(axis=1).max(initial=0.0)
        note(f"b={b} H={H[b]} ref={ref} scale={scale}")
        assert np.allclose(H[b], ref, rtol=1e-9, atol=1e-12 * scale)
