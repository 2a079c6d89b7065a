"""Every combiner is a proper distribution: token-level ones sum to 1 over the vocabulary at every
step, the top-1 prefix router sums to 1 exactly over a finite space, a sequence-level gate's exact
Z lies in its fresh-draw interval, and merged weights are what their formulas say
(modgen_bench.combiners: token, prefix, base.fresh_z_band, merge)."""

import copy
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modgen_bench.algorithms.spd import log_pi
from modgen_bench.combiners.base import fresh_z_band
from modgen_bench.combiners.merge import (
    NO_SHARED_INIT,
    MergeAvg,
    MergeTaskArith,
    merge_average,
    task_arithmetic,
)
from modgen_bench.combiners.prefix import prefix_top1_logprob
from modgen_bench.combiners.token import (
    TokenCombiner,
    expert_next_logprobs,
    loglinear_logprobs,
    mixture_logprobs,
    window_nll,
)
from modgen_bench.models import GateConfig, LMConfig, TransformerLM
from modgen_bench.sampling import LMProposal, draw_from_q

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, L, P_EXP = 3, 4, 2  # data tokens, tokens per sequence, experts
BOS, T = V, L + 1


def _experts(seed=0, scale=1.0):
    torch.manual_seed(seed)
    out = []
    for _ in range(P_EXP):
        m = TransformerLM(LMConfig(V + 1, T, 1, 1, 4, 8))
        with torch.no_grad():  # sharper, more different experts than at init
            m.head.weight.mul_(50 * scale)
        out.append(m.eval())
    return out


def _all_sequences():
    seqs = torch.tensor(list(itertools.product(range(V), repeat=L)))
    return torch.cat([torch.full((len(seqs), 1), BOS), seqs], dim=1)  # (V^L, T)


@pytest.mark.parametrize("kind", ["mixture", "loglinear"])
def test_token_combiners_sum_to_one_at_every_step_and_over_all_sequences(kind):
    experts = _experts()
    torch.manual_seed(1)
    net = TokenCombiner(GateConfig(V + 1, T, P_EXP, 1, 1, 4, 8), kind).eval()
    with torch.no_grad():
        net.router.head.weight.mul_(100)  # weights far from uniform
        if net.log_tau is not None:
            net.log_tau.fill_(0.7)  # a sharpening temperature
    idx = _all_sequences()
    with torch.no_grad():
        lp = net(idx, expert_next_logprobs(experts, idx)).double()  # (n, L, V + 1)
        nll = window_nll(net, idx, expert_next_logprobs(experts, idx)).double()
    assert torch.exp(lp).sum(dim=-1).numpy() == pytest.approx(np.ones((len(idx), L)), abs=1e-5)
    assert torch.exp(lp[..., BOS]).max() < 1e-30  # BOS is never a token
    assert torch.exp(-nll * L).sum().item() == pytest.approx(1.0, abs=1e-4)


@given(st.integers(0, 2**31 - 1), st.floats(1e-3, 5.0), st.booleans())
@settings(max_examples=30)
def test_mixture_and_loglinear_pooling_are_normalised_in_float64(seed, tau, zero_mass):
    """Random expert rows (some entries exactly 0, others 1e-300) and random weights: both pools
    sum to 1 over the vocabulary within float64 rounding."""
    g = torch.Generator().manual_seed(seed)
    B, Ln, p, Vv = 2, 3, 3, 7
    probs = torch.rand(B, Ln, p, Vv, generator=g, dtype=torch.float64)
    if zero_mass:
        probs[..., 0] = 0.0
        probs[..., 1] = 1e-300
    lp = torch.log(probs / probs.sum(-1, keepdim=True))
    log_gamma = torch.log_softmax(torch.randn(B, Ln, p, generator=g, dtype=torch.float64) * 5, -1)
    for out in (
        mixture_logprobs(log_gamma, lp),
        loglinear_logprobs(tau * torch.exp(log_gamma), lp),
    ):
        assert torch.isfinite(torch.logsumexp(out, -1)).all()
        assert torch.exp(out).sum(-1).numpy() == pytest.approx(np.ones((B, Ln)), abs=1e-12)


def _markov_token_logprobs(seed):
    """Experts as explicit order-1 Markov tables (float64): per-token log-probs (V^L, L, p)."""
    rng = np.random.default_rng(seed)
    init = rng.dirichlet(np.ones(V) * 0.3, size=P_EXP)  # (p, V)
    trans = rng.dirichlet(np.ones(V) * 0.3, size=(P_EXP, V))  # (p, V, V)
    seqs = np.array(list(itertools.product(range(V), repeat=L)))
    lp = np.empty((len(seqs), L, P_EXP))
    for k in range(P_EXP):
        lp[:, 0, k] = np.log(init[k, seqs[:, 0]])
        for t in range(1, L):
            lp[:, t, k] = np.log(trans[k, seqs[:, t - 1], seqs[:, t]])
    return torch.as_tensor(lp)


@given(st.integers(0, 10_000), st.integers(0, L + 2))
@settings(max_examples=25)
def test_top1_prefix_router_sums_to_one_exactly_over_a_finite_space(seed, m):
    lp = _markov_token_logprobs(seed)
    total = torch.exp(prefix_top1_logprob(lp, m)).sum().item()
    assert total == pytest.approx(1.0, abs=1e-12)


def test_top1_prefix_router_routes_on_the_prefix_and_scores_it_under_the_uniform_mixture():
    lp = _markov_token_logprobs(3)
    m = 2
    got = prefix_top1_logprob(lp, m)
    prefix = lp[:, :m].sum(1)
    k = prefix.argmax(1)
    want = torch.logsumexp(prefix, 1) - math.log(P_EXP) + lp[torch.arange(len(lp)), m:, k].sum(1)
    assert got.numpy() == pytest.approx(want.numpy(), abs=1e-12)
    # m = 0: the first expert alone (tie at the empty prefix); m = L: the uniform mixture
    assert prefix_top1_logprob(lp, 0).numpy() == pytest.approx(lp[..., 0].sum(1).numpy())
    assert prefix_top1_logprob(lp, L).numpy() == pytest.approx(
        (torch.logsumexp(lp.sum(1), 1) - math.log(P_EXP)).numpy()
    )


@pytest.mark.parametrize("seed,beta", [(0, 2.0), (1, 4.0), (2, -3.0)])
def test_sequence_gate_exact_z_lies_in_its_fresh_draw_interval(seed, beta):
    """Z_g = sum over all V^L sequences of pi_g(x), exact; the 95% interval of `fresh_z_band`
    (the grade of every sequence-level combiner) holds it on at least 16 of 20 independent draw
    sets of 2000 from q (a 95% interval misses that often with probability 0.3%). The gate
    g(x) = softmax_k(beta log E_k(x)) reads the whole sequence; beta > 0 leans on the likeliest
    expert (Z > 1), beta < 0 on the least likely (Z < 1)."""
    experts = _experts(seed, scale=0.5)

    def gate(idx):
        with torch.no_grad():
            log_e = torch.stack([e.sequence_logprob(idx) for e in experts], -1)
        return torch.log_softmax(beta * log_e, -1)

    idx = _all_sequences()
    with torch.no_grad():
        log_e = torch.stack([e.sequence_logprob(idx) for e in experts], -1).double()
        z_exact = torch.exp(log_pi(gate(idx).double(), log_e)).sum().item()
    assert abs(z_exact - 1.0) > 0.2  # a gate with Z far from 1
    proposal = LMProposal(experts, T, BOS)
    covered, widths = 0, []
    for rep in range(20):
        draws = draw_from_q(proposal, 2000, torch.Generator().manual_seed(100 * seed + rep))[:2]
        z, (lo, hi), rows = fresh_z_band(gate, draws)
        covered += z * math.exp(lo) <= z_exact <= z * math.exp(hi)
        widths.append(math.exp(hi) - math.exp(lo))
        assert dict((m, v) for _, m, v in rows)["Z_hat"] == pytest.approx(z)
    assert covered >= 16
    assert max(widths) < 0.25  # relative width: an interval, not the whole line


def _branched(n=3, seed=0):
    """A base LM and n copies moved apart (the 'branch' source: one shared initialisation)."""
    torch.manual_seed(seed)
    base = TransformerLM(LMConfig(V + 1, T, 1, 1, 4, 8)).eval()
    out = []
    for k in range(n):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for prm in m.parameters():
                prm.add_(0.1 * (k + 1) * torch.randn_like(prm))
        out.append(m.eval())
    return base, out


def test_merging_formulas_and_the_merged_model_is_a_distribution():
    base, experts = _branched()
    states = [e.state_dict() for e in experts]
    avg = merge_average(states)
    for key in avg:
        assert torch.allclose(avg[key], sum(s[key] for s in states) / 3, atol=1e-6)
    ta = task_arithmetic(base.state_dict(), states, 1 / 3)
    assert all(torch.allclose(ta[k], avg[k], atol=1e-6) for k in avg)  # alpha = 1/p: the average
    t0 = task_arithmetic(base.state_dict(), states, 0.0)
    assert all(torch.equal(t0[k], base.state_dict()[k]) for k in t0)
    merged = copy.deepcopy(base)
    merged.load_state_dict(task_arithmetic(base.state_dict(), states, 0.7))
    with torch.no_grad():
        total = torch.exp(merged.sequence_logprob(_all_sequences()).double()).sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="one architecture"):
        merge_average([states[0], {k: v for k, v in states[1].items() if k != "head.weight"}])


def _ctx(experts, base_state=None):
    g = torch.Generator().manual_seed(0)
    windows = torch.cat([torch.full((8, 1), BOS), torch.randint(0, V, (8, L), generator=g)], 1)
    ex = SimpleNamespace(modules=experts, base_state=base_state)
    budget = {"expert_params": 3000, "gate_params": 10, "expert_flops": 1e6, "expert_tokens": 1e3}
    return SimpleNamespace(
        experts=ex,
        splits=SimpleNamespace(p=2, val=windows, test=windows),
        device="cpu",
        budget=budget,
        cost=lambda a, b, c: SimpleNamespace(params_ratio=a, compute_ratio=b, token_ratio=c),
    )


def test_merge_combiners_decline_without_a_shared_base_and_run_with_one():
    base, experts = _branched(2)
    for comb in (MergeAvg(), MergeTaskArith()):
        res = comb.fit(_ctx(experts), {})
        assert res.nll is None and res.skip == NO_SHARED_INIT
    res = MergeTaskArith().fit(_ctx(experts, base.state_dict()), {"alphas": [0.0, 0.5]})
    assert res.nll.shape == (8,) and torch.isfinite(res.nll).all()
    assert dict((m, v) for _, m, v in res.rows)["alpha"] in (0.0, 0.5)
    avg = MergeAvg().fit(_ctx(experts, base.state_dict()), {})
    assert torch.isfinite(avg.nll).all()
