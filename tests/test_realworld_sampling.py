"""SIR and rejection sampling (modgen_bench/sampling.py), checked exactly on discrete problems.

On a finite space every quantity has a closed form: the target pi_g / Z_g, the acceptance rate
Z_g / p, the expected ESS fraction (E_q w)^2 / E_q w^2. The samplers must match them.
"""

import numpy as np
import pytest
import torch

from modgen_bench import exact, instances
from modgen_bench.sampling import TableProposal, log_accept, rejection_sample, sir


def _setup(gate_kind, seed=0):
    problem = instances.make("dirichlet", seed, p=3, N=12)
    if gate_kind == "robust":  # the exact minimax gate: Z_g = 1
        gate = exact.solve(problem).gate
    else:  # an arbitrary gate: Z_g != 1 in general
        gate = np.random.default_rng(seed).dirichlet(np.ones(3), size=12)
    pi = np.einsum("nk,kn->n", gate, problem.E)
    table = torch.log(torch.as_tensor(gate))
    return problem, pi, (lambda x: table[x]), TableProposal(torch.tensor(problem.E))


def _tv(samples, target):
    freq = np.bincount(samples.numpy(), minlength=len(target)) / samples.numel()
    return 0.5 * np.abs(freq - target).sum()


def test_acceptance_probability_integrates_to_Z_over_p_exactly():
    problem, pi, gate, prop = _setup("random")
    x = torch.arange(problem.N)
    a = torch.exp(log_accept(gate(x), prop.log_experts(x))).numpy()
    q = problem.E.mean(axis=0)
    assert np.all(a <= 1 + 1e-12)
    np.testing.assert_allclose((q * a).sum(), pi.sum() / problem.p, rtol=1e-12)
    np.testing.assert_allclose(q * a * problem.p, pi, rtol=1e-12)  # accepted mass is pi_g


@pytest.mark.parametrize("gate_kind", ["robust", "random"])
def test_rejection_samples_follow_pi_g_over_Z(gate_kind):
    problem, pi, gate, prop = _setup(gate_kind)
    res = rejection_sample(
        gate, prop, n=40_000, generator=torch.Generator().manual_seed(1), batch=4096
    )
    assert res.samples.shape == (40_000,)
    assert _tv(res.samples, pi / pi.sum()) < 0.02
    lo, hi = res.acceptance_ci
    assert lo < pi.sum() / problem.p < hi
    if gate_kind == "robust":  # Z = 1: the acceptance is the 1/p bound
        assert lo < res.bound < hi


def test_rejection_finds_a_wrong_target():
    """The TV check above can fail: the experts' uniform mixture q is far from pi_g."""
    problem, pi, gate, prop = _setup("random")
    res = rejection_sample(
        lambda x: torch.log(torch.full((len(x), 3), 1 / 3.0)),
        prop,
        n=20_000,
        generator=torch.Generator().manual_seed(2),
        batch=4096,
    )
    assert _tv(res.samples, pi / pi.sum()) > 0.05


@pytest.mark.parametrize("gate_kind", ["robust", "random"])
def test_sir_estimates_Z_and_resamples_pi_g(gate_kind):
    problem, pi, gate, prop = _setup(gate_kind)
    res = sir(gate, prop, n=50_000, m=50_000, generator=torch.Generator().manual_seed(3))
    lo, hi = res.Z_ci
    assert lo < pi.sum() < hi and hi - lo < 0.05
    assert _tv(res.samples, pi / pi.sum()) < 0.02
    q = problem.E.mean(axis=0)
    w = pi / q
    expected = (q @ w) ** 2 / (q @ w**2)  # ESS / n as n grows
    assert abs(res.ess_fraction - expected) < 0.02
    assert 1 <= res.ess <= 50_000


def test_same_seed_same_samples():
    _, _, gate, prop = _setup("random")
    a = rejection_sample(gate, prop, n=500, generator=torch.Generator().manual_seed(5))
    b = rejection_sample(gate, prop, n=500, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.samples, b.samples) and a.n_proposed == b.n_proposed
