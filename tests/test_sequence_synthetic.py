"""The conflicting successor domains: exact log P by brute force over every sequence (PAPER.md
section 5)."""

import itertools
import math

import pytest
import torch

from modgen_bench.data.synthetic import SuccessorTask


def _all_sequences(task):
    body = torch.tensor(list(itertools.product(range(task.vocab), repeat=task.length)))
    return torch.cat([torch.full((len(body), 1), task.bos), body], dim=1)


@pytest.mark.parametrize("c", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("vocab,length", [(3, 3), (4, 2), (5, 3)])
def test_log_prob_sums_to_one_and_support_is_exact(vocab, length, c):
    task = SuccessorTask(vocab=vocab, length=length, contamination=c)
    seqs = _all_sequences(task)
    P = task.log_prob(seqs).exp()  # (V^L, p)
    assert torch.allclose(P.sum(0), torch.ones(2, dtype=torch.float64))
    sup, W = task.support()
    assert len(sup) == 2 * vocab and torch.allclose(W.sum(0), torch.ones(2, dtype=torch.float64))
    # the support holds exactly the sequences of positive probability, with the same masses
    pos = seqs[(P > 0).any(1)]
    assert {tuple(s) for s in pos.tolist()} == {tuple(s) for s in sup.tolist()}
    assert torch.allclose(W, task.log_prob(sup).exp())
    lam = [0.3, 0.7]
    assert abs(float(task.mixture_log_prob(seqs, lam).exp().sum()) - 1) < 1e-12


def test_domains_follow_their_rule():
    task = SuccessorTask(vocab=100, length=6)
    g = torch.Generator().manual_seed(0)
    a, b = task.sample(0, 50, g), task.sample(1, 50, g)
    assert ((a[:, 2:] - a[:, 1:-1]) % 100 == 1).all()
    assert ((b[:, 2:] - b[:, 1:-1]) % 100 == 99).all()
    assert (task.log_prob(a)[:, 0] == -math.log(100)).all() and (
        task.log_prob(a)[:, 1] == -math.inf
    ).all()


def test_contaminated_domain_draws_a_at_its_share():
    task = SuccessorTask(vocab=10, length=3, contamination=0.25)
    x = task.sample(1, 20000, torch.Generator().manual_seed(0))
    share_a = float(torch.isfinite(task.chain_log_prob(x)[:, 0]).double().mean())
    assert abs(share_a - 0.25) < 0.02  # 4 s.e. at n = 20000


def test_same_seed_same_draw():
    task = SuccessorTask()
    assert torch.equal(
        task.sample_mixture([0.4, 0.6], 30, torch.Generator().manual_seed(5)),
        task.sample_mixture([0.4, 0.6], 30, torch.Generator().manual_seed(5)),
    )


def test_bad_input_names_the_rule():
    task = SuccessorTask(vocab=5, length=3)
    with pytest.raises(ValueError, match="BOS"):
        task.log_prob(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        task.log_prob(torch.full((2, 3), 5))
    with pytest.raises(ValueError, match="distribution"):
        task.sample_mixture([0.5, 0.6], 3, torch.Generator())
    with pytest.raises(ValueError, match="contamination"):
        SuccessorTask(contamination=1.0)
