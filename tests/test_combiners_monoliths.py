"""Robust monoliths (modgen_bench.combiners.monoliths): the Group DRO training loop lowers the worst
domain's loss below the uniform monolith's on a planted problem, graded exactly."""

import numpy as np
import pytest
import torch
from torch import nn

from modgen_bench.algorithms.lam_rules import make_lam_rule
from modgen_bench.combiners.monoliths import domain_losses, train_lm_robust

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, T, M = 4, 9, 16
#: an easy (low-entropy) domain and a hard (high-entropy) one, tokens i.i.d. within a window
P = torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.1, 0.3, 0.3, 0.3]], dtype=torch.float64)


class Unigram(nn.Module):
    """A context-free LM (one logit vector): capacity for one distribution, so the two domains
    compete and the domain weights decide the trade-off."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(V))

    def forward(self, idx):
        return self.bias.expand(*idx.shape, V), None  # (B, T, V)


def _batches(g):
    """M windows per domain: BOS (token 0, ignored by the loss) then T-1 i.i.d. tokens."""
    toks = [
        torch.multinomial(P[k], M * (T - 1), replacement=True, generator=g).view(M, T - 1)
        for k in range(2)
    ]
    return torch.cat([torch.cat([torch.zeros(M, 1, dtype=torch.long), t], 1) for t in toks])


def _exact_ce(model):
    """(2,) population cross-entropy -sum_v P_k(v) log q(v) per domain (nats/token)."""
    logq = torch.log_softmax(model.bias.detach().double(), 0)
    return -(P * logq).sum(dim=1).numpy()


def _train(eta):
    torch.manual_seed(0)
    model = Unigram()
    out = train_lm_robust(model, _batches, 400, 0.05, 2, make_lam_rule("eg", 2, eta), seed=0)
    return _exact_ce(model), out


def test_group_dro_monolith_beats_the_uniform_one_on_the_worst_domain():
    uni, out_u = _train(0.0)  # EG with step 0: the uniform monolith
    dro, out_d = _train(0.1)
    assert np.allclose(out_u["lam_last"], 0.5)
    assert out_d["lam_last"][1] > 0.6  # weight moved to the hard domain
    # exact optimum of the uniform mixture: q = mean of P (cross-entropy is minimised there)
    q = P.mean(dim=0)
    ce_uniform_opt = -(P * torch.log(q)).sum(dim=1).numpy()
    assert uni.max() == pytest.approx(ce_uniform_opt.max(), abs=0.02)
    # the minimax unigram: max_k CE_k over q, by a fine grid of the 1-D family of mixtures of P
    grid = np.linspace(0, 1, 2001)
    ce = [max(-(P * torch.log(a * P[0] + (1 - a) * P[1])).sum(dim=1).numpy()) for a in grid]
    assert dro.max() < uni.max() - 0.5 * (uni.max() - min(ce))
    assert dro.max() >= min(ce) - 0.02


def test_domain_losses_are_the_per_domain_token_cross_entropies():
    torch.manual_seed(1)
    model = Unigram()
    with torch.no_grad():
        model.bias.copy_(torch.randn(V))
    idx = _batches(torch.Generator().manual_seed(0))
    got = domain_losses(model, idx, 2)
    logq = torch.log_softmax(model.bias.detach(), 0)
    want = [-logq[idx[k * M : (k + 1) * M, 1:]].mean() for k in range(2)]
    assert got.detach().numpy() == pytest.approx(torch.stack(want).numpy(), abs=1e-6)
