"""modgen_bench.matching: counts against the real module, FLOPs, and each convention's ratios."""
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench import matching
from modgen_bench.models import LMConfig, TransformerLM, count_params


@given(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.integers(1, 8), st.integers(1, 40),
       st.integers(2, 300), st.integers(2, 40))
def test_counts_match_the_module(n_layer, n_head, d_mult, d_ff, vocab, block):
    cfg = LMConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head,
                   d_model=n_head * d_mult, d_ff=d_ff)
    m = TransformerLM(cfg)
    emb = sum(p.numel() for n, p in m.named_parameters()
              if n in ("encoder.tok.weight", "encoder.pos.weight", "head.weight"))
    assert matching.total_params(cfg) == count_params(m)
    assert matching.embedding_params(cfg) == emb
    assert matching.nonembedding_params(cfg) == count_params(m) - emb


EXPERT = LMConfig(vocab_size=257, block_size=33, n_layer=1, n_head=2, d_model=32, d_ff=128)
MONO = LMConfig(vocab_size=257, block_size=33, n_layer=2, n_head=2, d_model=2, d_ff=8)


def test_byte_level_experts_are_mostly_embeddings():
    """The issue's observation: at byte level most of a small expert is embeddings and head."""
    share = matching.embedding_params(EXPERT) / matching.total_params(EXPERT)
    assert share > 0.5


@pytest.mark.parametrize("r", [0.25, 0.5, 1.0, 1.7, 2.6])
def test_nonembedding_ratio_hits_its_target(r):
    plan = matching.match_monolith("tokens", EXPERT, 3, 300, 16, MONO, r=r)
    assert plan.r == pytest.approx(r, rel=0.15)
    assert plan.token_ratio == 1.0 and plan.steps == 300


def test_compute_convention_equalises_flops():
    for r in (0.5, 2.6):
        plan = matching.match_monolith("compute", EXPERT, 3, 300, 16, MONO, r=r)
        assert plan.compute_ratio == pytest.approx(1.0, rel=0.02)
        tok = matching.match_monolith("tokens", EXPERT, 3, 300, 16, MONO, r=r)
        assert (plan.steps < 300) == (tok.compute_ratio > 1)


def test_params_convention_matches_totals_and_hides_capacity():
    plan = matching.match_monolith("params", EXPERT, 3, 300, 16, MONO, gate_params=5000)
    assert plan.params_ratio == pytest.approx(1.0, rel=0.05)
    assert plan.r > 1.3                         # more non-embedding capacity than the experts


def test_flops_grow_with_width_and_steps():
    a = matching.train_flops(EXPERT, 10, 4)
    assert matching.train_flops(EXPERT, 20, 4) == pytest.approx(2 * a)
    assert matching.train_flops(replace(EXPERT, d_model=64, d_ff=256), 10, 4) > 2 * a


def test_unknown_convention_is_an_error():
    with pytest.raises(ValueError, match="choose from"):
        matching.match_monolith("flops", EXPERT, 3, 300, 16, MONO)
