"""Parameter counts by family: the monolith is matched to the experts in their own family's counts
(a Hugging Face GPT-2 ties its head, so the built-in closed forms would miscount it)."""

import _hf
import pytest

from modgen_bench.experts.builtin import BuiltinFamily
from modgen_bench.experts.hf import HFFamily
from modgen_bench.matching import closed_form_counts, match_monolith
from modgen_bench.models import LMConfig, TransformerLM, count_params


@pytest.mark.parametrize("n_layer,d,d_ff", [(1, 16, 0), (2, 32, 48), (3, 24, 96)])
def test_hf_counts_are_the_models_own(n_layer, d, d_ff):
    tok = _hf.tokenizer()
    family = HFFamily.gpt2(tok, 16)
    cfg = LMConfig(family.vocab_size, 16, n_layer, 2, d, d_ff or 4 * d)
    total, ne = family.param_counts(cfg)
    model = family.make(n_layer, 2, d, d_ff or 4 * d, 16, seed=0)
    assert total == count_params(model)
    # GPT-2: token and position embeddings (the head is tied to the token embedding)
    assert total - ne == (family.vocab_size + 16) * d
    assert total < closed_form_counts(cfg)[0]  # the closed form counts an untied head


def test_builtin_counts_are_the_closed_forms():
    cfg = LMConfig(257, 33, 2, 2, 32, 128)
    assert BuiltinFamily.param_counts(cfg) == closed_form_counts(cfg)
    assert BuiltinFamily.param_counts(cfg)[0] == count_params(TransformerLM(cfg))


def test_hf_monolith_is_matched_in_its_family():
    """Matched by the family's counts, the monolith's true total is within a width step of the
    experts' plus the gate's (the built-in closed forms left it 12% off in the quick run)."""
    tok = _hf.tokenizer()
    family = HFFamily.gpt2(tok, 33)
    V = family.vocab_size
    expert, template = LMConfig(V, 33, 2, 2, 32, 128), LMConfig(V, 33, 2, 2, 2, 8)
    plan = match_monolith(
        "params", expert, 3, 10, 4, template, gate_params=500, counts=family.param_counts
    )
    mono = family.make(2, 2, plan.d_model, 4 * plan.d_model, 33, seed=0)
    e = family.make(2, 2, 32, 128, 33, seed=0)
    true = count_params(mono) / (3 * count_params(e) + 500)
    assert plan.params_ratio == pytest.approx(true)
    assert abs(true - 1) < 0.05
