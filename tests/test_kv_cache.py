"""Ancestral sampling with a KV cache: the same logits as the full forward pass, the same draws and
log-probs as the sampler that re-runs the prefix, for the same generator."""

import pytest
import torch

from modgen_bench.models import LMConfig, TransformerLM
from modgen_bench.models.transformer import KVCache
from modgen_bench.sampling import LMProposal


def _model(n_layer=2, seed=0, block=12):
    torch.manual_seed(seed)
    m = TransformerLM(
        LMConfig(vocab_size=11, block_size=block, n_layer=n_layer, n_head=2, d_model=8, d_ff=16)
    ).eval()
    with torch.no_grad():  # move off the init so layers are not near-identity
        for prm in m.parameters():
            prm.add_(0.3 * torch.randn_like(prm))
    return m


@pytest.mark.parametrize("n_layer", [1, 3])
def test_cached_logits_equal_the_forward_pass_position_by_position(n_layer):
    m = _model(n_layer)
    idx = torch.randint(0, 10, (5, 12), generator=torch.Generator().manual_seed(1))
    idx[:, 0] = 10  # BOS
    full, _ = m(idx)  # (B, T, V)
    cache = KVCache.empty(n_layer)
    for t in range(idx.shape[1]):
        step = m.next_logits_cached(idx[:, t : t + 1], cache)
        torch.testing.assert_close(
            step, m._logits(m.encoder(idx[:, : t + 1]))[:, -1], rtol=1e-5, atol=1e-5
        )
        fin = torch.isfinite(full[:, t])
        torch.testing.assert_close(step[fin], full[:, t][fin], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="block_size"):
        m.next_logits_cached(idx[:, :1], cache)


def test_prefill_then_one_token_at_a_time():
    m = _model()
    idx = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(2))
    cache = KVCache.empty(2)
    m.next_logits_cached(idx[:, :4], cache)
    torch.testing.assert_close(
        m.next_logits_cached(idx[:, 4:5], cache), m.next_logits(idx[:, :5]), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="one token"):
        m.next_logits_cached(idx[:, 4:6], cache)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_sampler_draws_the_same_sequences_with_the_same_log_probs(seed):
    experts = [_model(seed=10 + k) for k in range(2)]
    draws = {}
    for cached in (True, False):
        prop = LMProposal(experts, 12, 10, kv_cache=cached, batch_size=64)
        g = torch.Generator().manual_seed(seed)
        x = torch.cat([prop.sample_expert(k, 100, g) for k in range(2)])
        draws[cached] = (x, prop.log_experts(x))
    assert torch.equal(draws[True][0], draws[False][0])
    torch.testing.assert_close(draws[True][1], draws[False][1])
    assert (draws[True][0][:, 0] == 10).all() and (draws[True][0][:, 1:] < 10).all()
    assert draws[True][0].unique().numel() > 5  # not a degenerate draw
