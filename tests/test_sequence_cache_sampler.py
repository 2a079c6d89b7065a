"""Caching the experts' log-likelihoods and the CachedSampler contract (PAPER.md section 4, SPD)."""

import pytest
import torch

from modgen_bench.algorithms.batch import GateBatch, Sampler
from modgen_bench.algorithms.spd import SPDConfig, train_spd
from modgen_bench.data.synthetic import SuccessorTask
from modgen_bench.models import GateConfig, LMConfig, SequenceGate, TransformerLM
from modgen_bench.sequence import (
    CachedProposalSampler,
    CachedSampler,
    cache_logliks,
    cache_token_logprobs,
)

TASK = SuccessorTask(vocab=5, length=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _experts(p=2):
    torch.manual_seed(0)
    return [
        TransformerLM(LMConfig(vocab_size=6, block_size=5, d_model=4, d_ff=8)).eval()
        for _ in range(p)
    ]


def _pools(n=(7, 9)):
    g = torch.Generator().manual_seed(0)
    return [TASK.sample(k, m, g) for k, m in enumerate(n)]


def test_cache_matches_each_expert_and_the_token_table():
    experts, seqs = _experts(), _pools()[1]
    tok = cache_token_logprobs(experts, seqs, "cpu", batch_size=4)  # several chunks
    ll = cache_logliks(experts, seqs, "cpu", batch_size=4)
    assert tok.shape == (9, 4, 2) and ll.shape == (9, 2)
    for k, e in enumerate(experts):
        with torch.no_grad():
            assert torch.allclose(ll[:, k], e.sequence_logprob(seqs), atol=1e-5)
            assert torch.allclose(tok[..., k], e.token_logprobs(seqs), atol=1e-6)
    assert all(not e.training for e in experts)


def _sampler():
    experts, seqs = _experts(), _pools()
    log_E = [cache_logliks(experts, s) for s in seqs]
    log_p = [TASK.log_prob(s)[:, k].float() for k, s in enumerate(seqs)]
    return CachedSampler(seqs, log_E, log_p), seqs, log_E, log_p


def test_sampler_contract():
    sampler, seqs, log_E, log_p = _sampler()
    assert isinstance(sampler, Sampler) and sampler.p == 2
    batch = sampler.sample(torch.Generator().manual_seed(1), per_domain=6)
    assert isinstance(batch, GateBatch)
    assert batch.inputs.shape == (12, 5) and batch.log_experts.shape == (12, 2)
    assert batch.domain.tolist() == [0] * 6 + [1] * 6
    assert (batch.n_tokens == 4).all()
    for x, k, le, lp in zip(
        batch.inputs, batch.domain, batch.log_experts, batch.log_p, strict=True
    ):
        i = (seqs[k] == x).all(1).nonzero()[0, 0]  # each item carries ITS OWN cached row
        assert torch.equal(le, log_E[k][i]) and lp == log_p[k][i]
    again = sampler.sample(torch.Generator().manual_seed(1), per_domain=6)
    assert torch.equal(batch.inputs, again.inputs)


def test_sampler_rejects_mismatched_tables():
    sampler, seqs, log_E, log_p = _sampler()
    with pytest.raises(ValueError, match="log_experts"):
        CachedSampler(seqs, [log_E[0], log_E[1][:3]])
    with pytest.raises(ValueError, match="one sequence pool"):
        CachedSampler(seqs, log_E[:1])
    with pytest.raises(ValueError, match="NaN"):
        CachedSampler(seqs, [log_E[0], torch.full_like(log_E[1], float("nan"))])


def test_proposal_sampler_feeds_spd():
    experts, seqs = _experts(), _pools((32, 32))
    bos = torch.full((16, 1), TASK.bos)
    g = torch.Generator().manual_seed(2)
    eseqs = [e.generate(bos, TASK.length, g) for e in experts]
    flags = [torch.isfinite(TASK.log_prob(s)).any(1) for s in eseqs]
    sampler = CachedProposalSampler(
        seqs,
        [cache_logliks(experts, s) for s in seqs],
        eseqs,
        [cache_logliks(experts, s) for s in eseqs],
        flags,
        log_p=[TASK.log_prob(s)[:, k].float() for k, s in enumerate(seqs)],
    )
    eb = sampler.sample_experts(torch.Generator().manual_seed(0), 5)
    assert eb.in_support.dtype == torch.bool and eb.inputs.shape == (10, 5)
    gate = SequenceGate(GateConfig(vocab_size=6, block_size=5, p=2, d_model=4, d_ff=8))
    res = train_spd(gate, sampler, SPDConfig(steps=5, per_domain=4, log_every=1))
    assert len(res.history) == 5 and torch.isfinite(torch.tensor(res.history["loss"].values)).all()
    with pytest.raises(ValueError, match="in_support"):
        CachedProposalSampler(
            seqs,
            [cache_logliks(experts, s) for s in seqs],
            eseqs,
            [cache_logliks(experts, s) for s in eseqs],
            [f.long() for f in flags],
        )
