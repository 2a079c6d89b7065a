"""modgen_bench.matching: counts against the real module, FLOPs, and each convention's ratios."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench import matching
from modgen_bench.models import LMConfig, TransformerLM, count_params


@given(
    st.integers(1, 3),
    st.sampled_from([1, 2, 4]),
    st.integers(1, 8),
    st.integers(1, 40),
    st.integers(2, 300),
    st.integers(2, 40),
)
def test_counts_match_the_module(n_layer, n_head, d_mult, d_ff, vocab, block):
    cfg = LMConfig(
        vocab_size=vocab,
        block_size=block,
        n_layer=n_layer,
        n_head=n_head,
        d_model=n_head * d_mult,
        d_ff=d_ff,
    )
    m = TransformerLM(cfg)
    emb = sum(
        p.numel()
        for n, p in m.named_parameters()
        if n in ("encoder.tok.weight", "encoder.pos.weight", "head.weight")
    )
    assert matching.total_params(cfg) == count_params(m)
    assert matching.embedding_params(cfg) == emb
    assert matching.nonembedding_params(cfg) == count_params(m) - emb


EXPERT = LMConfig(vocab_size=257, block_size=33, n_layer=1, n_head=2, d_model=32, d_ff=128)
MONO = LMConfig(vocab_size=257, block_size=33, n_layer=2, n_head=2, d_model=2, d_ff=8)


def test_byte_level_experts_are_mostly_embeddings():
    """At byte level most of a small expert is embeddings and head."""
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
    assert plan.r > 1.3  # more non-embedding capacity than the experts


def test_flops_grow_with_width_and_steps():
    a = matching.train_flops(EXPERT, 10, 4)
    assert matching.train_flops(EXPERT, 20, 4) == pytest.approx(2 * a)
    assert matching.train_flops(replace(EXPERT, d_model=64, d_ff=256), 10, 4) > 2 * a


def test_unknown_convention_is_an_error():
    with pytest.raises(ValueError, match="choose from"):
        matching.match_monolith("flops", EXPERT, 3, 300, 16, MONO)


@given(
    st.integers(1, 4),
    st.sampled_from([1, 2, 4, 8]),
    st.booleans(),
    st.floats(1e3, 1e9),
    st.sampled_from(["params", "nonembedding"]),
)
def test_width_search_is_the_brute_force_nearest_width(n_layer, n_head, scale_ff, target, which):
    """The bisection over widths picks what a scan of every width picks (nearest in log ratio,
    the smaller width on a tie): counts grow with the width."""
    import math

    template = LMConfig(257, 33, n_layer, n_head, n_head, 4 * n_head if scale_ff else 64)
    col = 0 if which == "params" else 1

    def cnt(d):
        c = replace(template, d_model=d, d_ff=4 * d if scale_ff else template.d_ff)
        return matching.closed_form_counts(c)[col]

    brute = min(matching._widths(template), key=lambda d: abs(math.log(cnt(d) / target)))
    fn = matching.width_for_params if which == "params" else matching.width_for_nonembedding
    assert fn(target, template, scale_ff) == brute


def test_a_family_count_moves_the_matched_width():
    """A family whose head is tied (as GPT-2's) has V d fewer parameters per model: matching by
    its own counts picks another width than the closed forms, one whose true total is nearer the
    experts', and the plan's ratios are stated in those counts."""
    template = LMConfig(257, 33, 2, 2, 2, 8)
    expert = LMConfig(257, 33, 2, 2, 32, 128)

    def tied(cfg):
        total, ne = matching.closed_form_counts(cfg)
        return total - cfg.vocab_size * cfg.d_model, ne

    def true_ratio(d):
        return tied(replace(template, d_model=d, d_ff=4 * d))[0] / (3 * tied(expert)[0])

    closed = matching.match_monolith("params", expert, 3, 10, 4, template)
    own = matching.match_monolith("params", expert, 3, 10, 4, template, counts=tied)
    assert own.d_model != closed.d_model
    assert own.params_ratio == pytest.approx(true_ratio(own.d_model))
    assert abs(own.params_ratio - 1) < abs(true_ratio(closed.d_model) - 1)
