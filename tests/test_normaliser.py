"""algorithms.normaliser: the control-variate Z estimate and the restoration to Z = 1, graded
against the exact Z of discrete problems (PAPER.md sections 1 and 4)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.algorithms.gates import gate_table, make_gate
from modgen_bench.algorithms.normaliser import control_weights, restore_z, z_control_variate
from modgen_bench.gates import pi_g, support_mask
from modgen_bench.sampling import TableProposal, draw_from_q, log_gate, log_weight, z_estimate


def _problem(family, seed):
    kw = {"support": 5} if family == "leaking" else {}
    return instances.make(family, seed, p=3, N=9, **kw)


def _exact_z(gate, problem, support):
    return float(pi_g(gate_table(gate, problem.N), problem.E)[support_mask(problem, support)].sum())


def _draws(problem, n, seed):
    prop = TableProposal(torch.tensor(problem.E, dtype=torch.float64))
    return draw_from_q(prop, n, torch.Generator().manual_seed(seed))[:2]


def _skewed_gate(problem, seed, scale=3.0):
    """A table gate far from constant (so Z != 1) with a fixed random initialisation."""
    gate = make_gate("table", problem.N, problem.p, seed=seed).double()
    with torch.no_grad():
        for t in gate.parameters():
            t.copy_(
                scale
                * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=t.dtype)
            )
    return gate


def test_constant_gate_is_exact_with_zero_error():
    """w = sum_k g_k c_k with constant g: the regression residual is 0, Z_cv = 1 exactly, while
    the plain mean of the same weights still carries sampling error."""
    problem = _problem("dirichlet", 0)
    inputs, log_e = _draws(problem, 500, 0)
    log_g = torch.log(torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)).expand(500, 3)
    log_w = log_weight(log_g, log_e)
    z, (lo, hi), se = z_control_variate(log_w, log_e)
    assert z == pytest.approx(1.0, abs=1e-12) and se <= 1e-11 and lo <= 1 <= hi
    assert abs(z_estimate(log_w)[0] - 1.0) > 1e-6


def test_estimate_is_a_fixed_linear_combination_of_the_weights():
    problem = _problem("leaking", 1)
    inputs, log_e = _draws(problem, 300, 1)
    log_w = log_weight(log_gate(_skewed_gate(problem, 1), inputs), log_e)
    a = control_weights(log_e)
    z = z_control_variate(log_w, log_e)[0]
    assert float(a @ torch.exp(log_w.double()).numpy()) == pytest.approx(z, rel=1e-10)
    assert a.sum() == pytest.approx(1.0, abs=1e-10)  # the intercept of a constant w is w


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    family=st.sampled_from(["dirichlet", "leaking", "disjoint"]),
    support=st.sampled_from(["domains", "union"]),
)
def test_estimate_brackets_the_exact_Z(seed, family, support):
    """|Z_cv - Z| <= 5 se on 4000 draws from q, over random gates, families and both support
    conventions (out-of-support draws have w = 0); the CV error is below the plain mean's."""
    problem = _problem(family, seed)
    gate = _skewed_gate(problem, seed)
    inputs, log_e = _draws(problem, 4000, seed)
    mask = torch.tensor(support_mask(problem, support))[inputs]
    log_w = torch.where(
        mask,
        log_weight(log_gate(gate, inputs), log_e).double(),
        torch.tensor(-np.inf, dtype=torch.float64),
    )
    z, _, se = z_control_variate(log_w, log_e)
    assert abs(z - _exact_z(gate, problem, support)) <= 5 * se + 1e-12
    plain_lo, plain_hi = z_estimate(log_w)[1]
    assert se <= 1.01 * (plain_hi - plain_lo) / (2 * 1.96)


def test_restoration_reaches_Z_1_on_its_draws_and_near_1_exactly():
    """Z far from 1 before; after, Z_cv = 1 within tol on the restoration draws and the exact Z
    within 0.02 of 1 (the draws' sampling error), the gate moved in place."""
    for family, seed in [("leaking", 3), ("dirichlet", 4)]:
        problem = _problem(family, seed)
        gate = _skewed_gate(problem, seed)
        before = _exact_z(gate, problem, "domains")
        inputs, log_e = _draws(problem, 20_000, seed)
        in_s = torch.tensor(support_mask(problem, "domains"))[inputs]
        res = restore_z(gate, inputs, log_e, in_support=in_s, tol=1e-8)
        after = _exact_z(gate, problem, "domains")
        assert abs(before - 1) > 0.05, before
        assert res.converged and abs(res.z_after - 1) <= 1e-8 and res.steps >= 1
        assert abs(after - 1) < 0.02, (before, after)
        assert res.z_before == pytest.approx(before, abs=0.05)
        assert abs(after - 1) <= 5 * res.se and 0 < res.se < 0.02  # Z put on 1 to within its se


def test_restoration_without_steps_changes_nothing_and_says_so():
    problem = _problem("leaking", 5)
    gate = _skewed_gate(problem, 5)
    table = gate_table(gate, problem.N)
    inputs, log_e = _draws(problem, 2000, 5)
    res = restore_z(gate, inputs, log_e, max_steps=0)
    assert not res.converged and res.steps == 0 and res.z_after == res.z_before
    np.testing.assert_array_equal(gate_table(gate, problem.N), table)


def test_restoration_rejects_empty_or_mismatched_draws():
    problem = _problem("dirichlet", 6)
    gate = _skewed_gate(problem, 6)
    inputs, log_e = _draws(problem, 100, 6)
    for bad in [(inputs[:0], log_e[:0]), (inputs, log_e[:50]), (inputs, log_e * float("nan"))]:
        with pytest.raises(ValueError, match="restore_z"):
            restore_z(gate, *bad)


def test_few_draws_give_no_false_certainty():
    """n <= p: the fit interpolates the draws (residual 0); the interval must be the whole line,
    not the rounding floor (a red-team finding: coverage 0 at n = p = 8)."""
    problem = instances.make("dirichlet", 7, p=8, N=40)
    gate = _skewed_gate(problem, 7)
    inputs, log_e = _draws(problem, 8, 7)
    z, (lo, hi), se = z_control_variate(log_weight(log_gate(gate, inputs), log_e), log_e)
    assert se == float("inf") and lo == -float("inf") and hi == float("inf")


def test_weights_and_estimate_agree_on_nearly_equal_experts():
    """Two experts equal up to 1e-14: the restoration's weights a and the reported estimate use
    one pseudo-inverse, so a @ w is the estimate (they disagreed by up to 8e-3 before)."""
    problem = _problem("dirichlet", 8)
    E = problem.E.copy()
    E[1] = E[0] * (1 + 1e-14)
    E[1] /= E[1].sum()
    prop = TableProposal(torch.tensor(E, dtype=torch.float64))
    inputs, log_e = draw_from_q(prop, 500, torch.Generator().manual_seed(8))[:2]
    log_w = log_weight(log_gate(_skewed_gate(problem, 8), inputs), log_e)
    z = z_control_variate(log_w, log_e)[0]
    assert float(control_weights(log_e) @ torch.exp(log_w.double()).numpy()) == pytest.approx(
        z, abs=1e-12
    )


def test_restoration_ignores_a_parameter_the_gate_does_not_use():
    problem = _problem("leaking", 9)
    gate = _skewed_gate(problem, 9)
    gate.unused = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    inputs, log_e = _draws(problem, 5000, 9)
    res = restore_z(gate, inputs, log_e)
    assert res.converged and torch.equal(gate.unused, torch.zeros(3, dtype=torch.float64))
