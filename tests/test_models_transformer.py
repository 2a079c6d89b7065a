"""Shapes, causality and the likelihood conventions of the sequence models (PAPER.md sections
4-5)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from modgen_bench.models import (
    CausalRouter,
    GateConfig,
    LMConfig,
    SequenceGate,
    TransformerLM,
    count_params,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scaled(model, std=0.5, seed=0):
    """Re-draw every parameter with a large std so that dependencies show in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def _lm(V=7, T=6, **kw):
    return _scaled(TransformerLM(LMConfig(vocab_size=V, block_size=T, **kw)))


def _tokens(B, T, V, seed=1):
    """(B, T) sequences over a model vocabulary of V: BOS = V - 1, then data tokens 0 .. V - 2."""
    data = torch.randint(V - 1, (B, T - 1), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((B, 1), V - 1), data], dim=1)


def test_lm_shapes_and_loss_is_cross_entropy():
    m = _lm()
    idx = _tokens(3, 6, 7)
    logits, loss = m(idx[:, :-1], targets=idx[:, 1:])
    assert logits.shape == (3, 5, 7)
    assert torch.isfinite(loss)
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 7), idx[:, 1:].reshape(-1)))
    assert m.token_logprobs(idx).shape == (3, 5)
    assert m.sequence_logprob(idx).shape == (3,)


@pytest.mark.parametrize("make", ["lm", "router"])
def test_changing_a_future_token_leaves_earlier_outputs_unchanged(make):
    V, T = 7, 6
    model = _lm(V, T) if make == "lm" else _scaled(CausalRouter(GateConfig(V, T, p=3)))
    idx = _tokens(4, T, V)
    out = model(idx)[0] if make == "lm" else model(idx)
    for j in range(1, T):
        changed = idx.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        new = model(changed)[0] if make == "lm" else model(changed)
        assert torch.allclose(new[:, :j], out[:, :j], atol=1e-6), f"position < {j} saw token {j}"
        assert not torch.allclose(new[:, j:], out[:, j:], atol=1e-4), "the model ignores token j"


def test_router_rows_are_log_softmax():
    r = _scaled(CausalRouter(GateConfig(7, 6, p=3)))
    out = r(_tokens(2, 6, 7))
    assert out.shape == (2, 6, 3)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 6), atol=1e-6)


def test_gate_reads_the_whole_sequence():
    V, T = 7, 6
    gate = _scaled(SequenceGate(GateConfig(V, T, p=3)))
    idx = _tokens(4, T, V)
    out = gate(idx)
    assert out.shape == (4, 3)
    assert torch.allclose(out.exp().sum(-1), torch.ones(4), atol=1e-6)
    for j in range(T):  # non-causal: the LAST token matters as much as the first
        changed = idx.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        assert not torch.allclose(gate(changed), out, atol=1e-4), f"gate ignores token {j}"


def test_sequence_logprob_is_sum_of_token_logprobs_and_matches_brute_force():
    V, T = 7, 6
    m = _lm(V, T)
    idx = _tokens(5, T, V)
    tok = m.token_logprobs(idx)
    assert torch.allclose(m.sequence_logprob(idx), tok.sum(-1), atol=1e-5)
    for t in range(1, T):  # brute force: run the model on the prefix ALONE, read its last row
        logits, _ = m(idx[:, :t])
        ref = F.log_softmax(logits[:, -1], dim=-1).gather(1, idx[:, t : t + 1]).squeeze(1)
        assert torch.allclose(tok[:, t - 1], ref, atol=1e-5)


def test_sequence_probabilities_sum_to_one_over_all_data_sequences():
    V, T, bos = 4, 4, 3  # every continuation of BOS by 3 of the 3 data tokens (no BOS)
    m = _lm(V, T)
    seqs = torch.tensor([[bos, *s] for s in itertools.product(range(V - 1), repeat=T - 1)])
    total = torch.logsumexp(m.sequence_logprob(seqs).detach().double(), 0).exp()
    assert abs(float(total) - 1.0) < 1e-5
    assert torch.isneginf(m(seqs)[0][..., bos]).all()


def test_generate_never_draws_bos_and_is_seeded():
    m = _lm(V=5, T=6)
    start = torch.full((64, 1), 4)
    a = m.generate(start, 5, torch.Generator().manual_seed(3))
    b = m.generate(start, 5, torch.Generator().manual_seed(3))
    assert a.shape == (64, 6) and torch.equal(a, b)
    assert (a[:, 1:] != 4).all()


def test_count_params_matches_the_formula():
    V, T, C, Fd, L = 11, 9, 8, 32, 2
    m = TransformerLM(LMConfig(V, T, n_layer=L, d_model=C, d_ff=Fd))
    block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (C * Fd + Fd) + (Fd * C + C)
    assert count_params(m) == V * C + T * C + L * block + 2 * C + C * V


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="n_head"):
        LMConfig(vocab_size=5, block_size=4, d_model=7, n_head=2)
    with pytest.raises(ValueError, match="block_size"):
        _lm(V=5, T=4)(torch.zeros(1, 6, dtype=torch.long))
