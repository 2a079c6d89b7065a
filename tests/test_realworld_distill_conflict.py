"""Structural distillation (modgen_bench/distill.py) and gradient conflict
(modgen_bench/conflict.py)."""

import pytest
import torch

from modgen_bench.conflict import domain_gradients, mean_pairwise_cosine, pairwise_cosines
from modgen_bench.distill import bayes_router, student_token_logprobs, train_router
from modgen_bench.models import CausalRouter, GateConfig, LMConfig, TransformerLM
from modgen_bench.sampling import LMProposal, draw_from_q
from modgen_bench.sequence.cache import cache_token_logprobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _experts(p=2, T=9, V=6, seed=0):
    torch.manual_seed(seed)
    experts = [TransformerLM(LMConfig(V + 1, T, 1, 2, 8, 16)).eval() for _ in range(p)]
    with torch.no_grad():  # sharpen: distinct experts, so the prefix is informative
        for e in experts:
            e.head.weight.mul_(100.0)
    return experts


def test_bayes_router_reproduces_a_fixed_mixture_exactly():
    """For a teacher sum_k w[k] E[k], the posterior router makes the student equal the teacher."""
    experts = _experts(p=3)
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.full((16, 1), 6), torch.randint(0, 6, (16, 8), generator=g)], dim=1)
    tok = cache_token_logprobs(experts, idx)  # (16, 8, 3)
    log_w = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    student = student_token_logprobs(bayes_router(log_w, tok), tok).sum(dim=1)
    teacher = torch.logsumexp(log_w + tok.sum(dim=1), dim=-1)
    torch.testing.assert_close(student, teacher, rtol=0, atol=1e-5)
    # a constant router (no prefix information) is NOT the teacher: the check can fail
    const = log_w.expand(16, 9, 3)
    assert (student_token_logprobs(const, tok).sum(1) - teacher).abs().max() > 1e-3


def test_router_training_approaches_the_bayes_router():
    """On samples from a fixed mixture, the learned router's loss falls toward the Bayes loss."""
    experts = _experts(p=2, seed=1)
    w = torch.tensor([0.5, 0.5])
    g = torch.Generator().manual_seed(3)
    idx = draw_from_q(LMProposal(experts, block_size=9, bos=6), 128, g)[0]  # q = mixture, w uniform
    tok = cache_token_logprobs(experts, idx)
    bayes = -student_token_logprobs(bayes_router(torch.log(w), tok), tok).mean().item()
    torch.manual_seed(0)
    router = CausalRouter(GateConfig(7, 9, 2, 1, 2, 8, 16))
    losses = train_router(router, idx, tok, steps=60, lr=2e-2, batch_size=32, seed=0)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first - bayes > 0.05  # the prefix is worth learning from
    assert bayes - 0.02 <= last < bayes + 0.5 * (first - bayes)


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(3))


@pytest.mark.parametrize(
    "targets,expected",
    [
        ([[1.0, 0, 0], [1.0, 0, 0]], 1.0),  # same direction
        ([[1.0, 0, 0], [-2.0, 0, 0]], -1.0),  # opposite: full conflict
        ([[1.0, 0, 0], [0, 3.0, 0]], 0.0),  # orthogonal
    ],
)
def test_mean_pairwise_cosine_on_known_gradients(targets, expected):
    model = _Linear()
    # loss_k = -theta . t_k  has gradient -t_k
    losses = [lambda t=t: -(model.theta * t).sum() for t in map(torch.tensor, targets)]
    G = domain_gradients(model, losses)
    torch.testing.assert_close(G, -torch.tensor(targets))
    assert mean_pairwise_cosine(G) == pytest.approx(expected, abs=1e-6)


def test_pairwise_cosines_is_symmetric_with_unit_diagonal():
    G = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    C = pairwise_cosines(G)
    torch.testing.assert_close(C, C.T)
    torch.testing.assert_close(torch.diag(C), torch.ones(4))
    j, k = 0, 3
    assert C[j, k].item() == pytest.approx(float(G[j] @ G[k] / G[j].norm() / G[k].norm()), abs=1e-6)
