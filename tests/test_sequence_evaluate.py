"""Evaluation on test mixtures: exact KL and NLL against brute force, and their identities."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench.sequence.evaluate import (
    domain_nll,
    log_Z,
    mixture_kl,
    mixture_nll_per_token,
    sample_weights,
)


def _dist(draw_vals):
    v = torch.tensor(draw_vals, dtype=torch.float64) + 1e-3
    return v / v.sum()


probs = st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4)


@given(probs, probs, probs, st.floats(0.0, 1.0))
def test_kl_matches_brute_force_and_nll_is_kl_plus_entropy(p0, p1, m, a):
    P = torch.stack([_dist(p0), _dist(p1)], dim=1)  # (n, p): W[i, k] = P_k(x_i), exact
    M = _dist(m)
    lam = [a, 1 - a]
    P_lam = P @ torch.tensor(lam, dtype=torch.float64)
    mask = P_lam > 0
    kl_ref = float((P_lam[mask] * (P_lam[mask].log() - M[mask].log())).sum())
    kl = mixture_kl(M.log(), P, P.log(), lam)
    assert kl == pytest.approx(kl_ref, abs=1e-10)
    assert kl >= -1e-12
    H = -float((P_lam[mask] * P_lam[mask].log()).sum())
    assert mixture_nll_per_token(M.log(), P, lam, n_tokens=1) == pytest.approx(kl + H, abs=1e-10)


def test_kl_of_the_mixture_itself_is_zero():
    P = torch.tensor([[0.5, 0.0], [0.5, 0.2], [0.0, 0.8]], dtype=torch.float64)
    lam = [0.3, 0.7]
    M = P @ torch.tensor(lam, dtype=torch.float64)
    assert mixture_kl(M.log(), P, P.log(), lam) == pytest.approx(0.0, abs=1e-12)
    assert log_Z(M.log()) == pytest.approx(0.0, abs=1e-12)


def test_sample_weights_give_per_domain_means():
    domain = torch.tensor([0, 0, 1, 1, 1])
    W = sample_weights(domain, 2)
    vals = torch.tensor([-1.0, -3.0, -2.0, -2.0, -5.0], dtype=torch.float64)
    assert domain_nll(vals, W).tolist() == pytest.approx([2.0, 3.0])
    with pytest.raises(ValueError, match="no items"):
        sample_weights(torch.tensor([0, 0]), 2)
    with pytest.raises(ValueError, match="weights"):
        domain_nll(vals, W * 2)
