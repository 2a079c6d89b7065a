"""Contract tests over every registered lam rule, and each rule's published update
(lam_rules.py)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench.algorithms.lam_rules import LAM_RULES, make_lam_rule
from modgen_bench.algorithms.projection import BoxLambda

RULES = sorted(LAM_RULES)
signals = st.lists(st.floats(-3, 3, allow_nan=False), min_size=3, max_size=3)


def test_registry_has_the_four_rules():
    assert set(RULES) == {"eg", "doremi", "groupdro", "afl"}
    with pytest.raises(KeyError, match="choose one of afl, doremi, eg, groupdro"):
        make_lam_rule("nope", 3, 0.1)


@pytest.mark.parametrize("name", RULES)
@given(sig=st.lists(signals, min_size=1, max_size=5))
def test_rule_stays_on_the_simplex(name, sig):
    rule = make_lam_rule(name, 3, 0.5)
    for s in sig:
        rule.update(torch.tensor(s, dtype=torch.float64))
        for lam in (rule.lam, rule.output()):
            assert torch.all(lam >= 0) and abs(float(lam.sum()) - 1) < 1e-12


@pytest.mark.parametrize("name", RULES)
def test_rule_ascends_the_domain_with_the_larger_signal(name):
    rule = make_lam_rule(name, 3, 0.5)
    rule.update(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert rule.lam[1] > 1 / 3 > rule.lam[0]
    assert torch.isclose(rule.lam[0], rule.lam[2])


@pytest.mark.parametrize("name", RULES)
def test_rule_respects_Lambda(name):
    Lam = BoxLambda(lo=(0.0, 0.0, 0.0), hi=(1.0, 0.4, 1.0))
    rule = make_lam_rule(name, 3, 5.0, Lambda=Lam)
    for _ in range(20):
        rule.update(torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64))
    assert float(rule.lam[1]) <= 0.4 + 1e-12
    assert float(rule.output()[1]) <= 0.4 + 1e-12


def test_eg_formula_and_average():
    rule = make_lam_rule("eg", 2, 0.3)
    rule.update(torch.tensor([1.0, 0.0], dtype=torch.float64))
    lam1 = math.exp(0.3) / (math.exp(0.3) + 1)
    assert float(rule.lam[0]) == pytest.approx(lam1, abs=1e-15)
    rule.update(torch.tensor([0.0, 0.0], dtype=torch.float64))
    assert float(rule.output()[0]) == pytest.approx(
        lam1, abs=1e-15
    )  # average of two equal iterates


def test_doremi_clips_negative_excess_and_smooths():
    rule = make_lam_rule("doremi", 2, eta=123.0)  # eta ignored: step 1
    rule.update(torch.tensor([-5.0, 0.0], dtype=torch.float64))
    assert float(rule.lam[0]) == pytest.approx(0.5, abs=1e-15)  # clipped to 0: no move
    rule.update(torch.tensor([2.0, 0.0], dtype=torch.float64))
    a = math.exp(2.0) / (math.exp(2.0) + 1)
    assert float(rule.lam[0]) == pytest.approx((1 - 1e-3) * a + 1e-3 / 2, abs=1e-15)
    assert float(rule.output()[0]) == pytest.approx((0.5 + float(rule.lam[0])) / 2, abs=1e-15)


def test_groupdro_step_is_0_01_and_returns_last_iterate():
    rule = make_lam_rule("groupdro", 2, eta=123.0)
    rule.update(torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(rule.output()[0]) == pytest.approx(
        math.exp(0.01) / (math.exp(0.01) + 1), abs=1e-15
    )


def test_afl_is_projected_gradient_ascent():
    rule = make_lam_rule("afl", 2, eta=0.1)
    rule.update(torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(rule.lam[0]) == pytest.approx(0.55, abs=1e-15)  # (0.5 + 0.1, 0.5) - 0.05
    rule.update(torch.tensor([100.0, 0.0], dtype=torch.float64))
    assert float(rule.lam[0]) == pytest.approx(1.0, abs=1e-15)  # projected onto the simplex
    assert float(rule.output()[0]) == pytest.approx(0.775, abs=1e-15)
