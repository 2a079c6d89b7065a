"""FLOP accounting of both sides of the scaling study (`modgen_bench.matching`) against hand counts
on a tiny model, and the compute_total convention."""

import pytest

from modgen_bench import matching
from modgen_bench.models import LMConfig, TransformerLM

#: vocab 5, T = 3, 1 layer, d = 2, d_ff = 4: N_nonemb = (4*4 + 2*2*4 + 9*2 + 4) + 2*2 = 58
TINY = LMConfig(vocab_size=5, block_size=3, n_layer=1, n_head=2, d_model=2, d_ff=4)


def test_tiny_counts_by_hand():
    assert matching.nonembedding_params(TINY) == 58
    assert matching.nonembedding_count(TransformerLM(TINY)) == 58
    # training per token: 3 x (2 (58 + 5*2) + 2*1*3*2) = 3 x 148
    assert matching.train_flops_per_token(TINY) == 444
    # one window, T - 1 = 2 positions: t = 1: 2*68 + 4*1*1*2 = 144; t = 2: 2*68 + 4*1*2*2 = 152
    assert matching.causal_pass_flops(TINY, 1) == 296
    assert matching.causal_pass_flops(TINY, 7) == 7 * 296
    # gate N = 10, 1 layer, d = 2, T = 3: 2*3*10 + 4*1*3*3*2 = 132 per sequence
    assert matching.gate_pass_flops(10, 1, 2, 3, 1) == 132


def test_gate_side_total_against_a_hand_count():
    f = matching.gate_side_flops(
        TINY,
        p=2,
        expert_steps=2,
        batch=1,
        n_windows=4,
        n_draws=3,
        gate=(10, 1, 2),
        spd_steps=2,
        per_domain=1,
        n_restore_draws=5,
        restore_steps=2,
        n_routed=6,
    )
    assert f.experts_train == 2 * 444 * 2 * 1 * 3  # p x per-token x steps x seqs x T
    assert f.expert_scoring == 2 * 4 * 296  # every window under both experts
    assert f.sampling == 3 * 296 + 2 * 3 * 296  # 3 draws, then scored by 2 experts
    assert f.gate_train == 3 * (2 * 2 * 2 * 1) * 132  # fwd+bwd, 2 steps x (data + draws)
    assert f.restoration == (3 * 3 + 2) * 5 * 132  # 3 gradients, 2 accepted forwards
    assert f.routing == 6 * 132
    assert f.total == 5328 + 2368 + 2664 + 3168 + 7260 + 792 == 21580
    assert f.beyond_training == 21580 - 5328


def test_compute_total_charges_the_gate_sides_extra_flops():
    expert = LMConfig(257, 33, 1, 2, 32, 128)
    template = LMConfig(257, 33, 2, 2, 2, 8)
    base = matching.match_monolith("compute", expert, 3, 100, 16, template, r=1.0)
    extra = 9.0 * 3 * matching.train_flops(expert, 100, 16)  # 9 x the experts' training
    tot = matching.match_monolith(
        "compute_total", expert, 3, 100, 16, template, r=1.0, extra_flops=extra
    )
    assert tot.d_model == base.d_model
    assert tot.compute_ratio == pytest.approx(10.0, rel=0.01)
    assert tot.steps == pytest.approx(10 * base.steps, rel=0.02)
