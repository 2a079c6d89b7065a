"""Mutation power: every theory check must FAIL on plausible wrong versions of its claim.

The catalogue (theory_checks/mutations.py) models wrong proofs: a constant off by a factor 2 in
the direction that makes the statement false, a sign flipped, a square root lost, a term dropped
or counted twice, the wrong end of an envelope, a planted 10% violation rate. Each runs at the
budget `modgen-bench check` uses for them (mutations.BUDGET, seed 0), where the unmutated
reading holds (TRUE_ROWS of tests/test_theory_verdict.py). The few a check cannot catch are
pinned here with the reason: the bound's slack exceeds the error on every instance.
"""

import numpy as np
import pytest

from theory_checks import CLAIMS, mutations, thm9
from theory_checks.verdict import Tally

#: (claim, mutation) the check has no power against, and why (asserted below)
UNCAUGHT = {
    ("prior", "L / 2"): "L = M/2 is loose: (V(D) - V(L)) / (L d_H) <= ~0.05",
    ("prior", "max envelope"): "M from max_k E_k still exceeds the observed slope",
    ("thm9", "2 sqrt 2 -> sqrt 2"): "e^M makes the Rademacher term loose: sup dev / RHS <= ~0.05",
    ("thm9", "no union bound"): "log(2/delta) vs log(1/delta) is inside that slack",
}


@pytest.fixture(scope="module")
def results():
    return {
        (r.mutation.claim, r.mutation.name, r.mutation.reading): r
        for r in mutations.power(budget=mutations.BUDGET, seed=0)
    }


@pytest.fixture(scope="module")
def unmutated():
    from theory_checks import run_claims

    verdicts, _ = run_claims([], instances=mutations.BUDGET, seed=0)
    return {(v.claim, v.reading): v for v in verdicts}


@pytest.mark.parametrize(
    "mut",
    mutations.MUTATIONS,
    ids=[f"{m.claim}-{m.name}-{m.reading[:16]}" for m in mutations.MUTATIONS],
)
def test_plausible_wrong_proof_is_caught(results, unmutated, mut):
    r = results[(mut.claim, mut.name, mut.reading)]
    assert unmutated[(mut.claim, mut.reading)].status == "holds"
    if (mut.claim, mut.name) in UNCAUGHT:
        assert r.status == "holds"
        # why: the smaller side is below half the larger one on every instance
        assert unmutated[(mut.claim, mut.reading)].ratio_max < 0.5
    else:
        assert r.status == "fails", f"{mut.claim} {mut.name}: {r.violations}/{r.instances}"
        assert r.violations > 0


def test_every_claim_has_mutations_of_readings_that_hold():
    from test_theory_verdict import TRUE_ROWS

    per_claim = {c: [m for m in mutations.MUTATIONS if m.claim == c] for c in CLAIMS}
    assert all(len(ms) >= 2 for ms in per_claim.values()), per_claim
    assert {(m.claim, m.reading) for m in mutations.MUTATIONS} <= TRUE_ROWS
    assert set(UNCAUGHT) <= {(m.claim, m.name) for m in mutations.MUTATIONS}


def test_mutated_restores_the_theorem():
    with mutations.mutated(thm9, {"scale": 0.5}):
        assert thm9.MUTATION == {"scale": 0.5}
    assert thm9.MUTATION == {}
    with pytest.raises(RuntimeError), mutations.mutated(thm9, {"scale": 0.5}):
        raise RuntimeError
    assert thm9.MUTATION == {}


def test_attach_power_counts_caught_per_reading(results, unmutated):
    verdicts = list(unmutated.values())
    mutations.attach_power(verdicts, list(results.values()))
    power = {(v.claim, v.reading): v.power for v in verdicts}
    assert power[("prop2", "pi = lam @ E")] == "3/3"
    assert power[("prior", "W(D)-W(L) <= L d_H, L=M/2 (linearised)")] == "2/4"
    assert power[("lemma1", "support=domains")] == ""  # no mutation targets it


def test_thm9_bound_halved_violates_far_above_delta(monkeypatch):
    """The one-gate reading is where the bound is tight up to constants: halved, the violation
    rate is about 0.1 > delta = 0.05 at every m."""
    monkeypatch.setattr(thm9, "MUTATION", {"scale": 0.5})
    for m in thm9.M_GRID:
        rate = np.mean(thm9.two_point_margins(m, 4000, np.random.default_rng(m)) < 0)
        assert rate > 1.5 * thm9.DELTA


def test_tally_ratio_and_outside_hypothesis():
    t = Tally("c", "r")
    t.add(0.5, "a", sides=(1.0, 2.0))
    t.add(0.0, "b", sides=(3.0, 3.0))
    t.add(1.0, "c", sides=(-1.0, 2.0))  # a non-positive side has no ratio
    v = t.verdict()
    assert (v.ratio_median, v.ratio_max, v.ratios) == (0.75, 1.0, 2)
    out = Tally("c", "beyond", outside=True)
    out.add(-1.0, "x", sides=(2.0, 1.0))
    v = out.verdict()
    assert v.status == "outside hypothesis" and v.violations == 1 and v.ratio_max == 2.0
    assert v.row()["status"] == "outside hypothesis"


def test_outside_hypothesis_is_not_a_failure_in_the_headline():
    from theory_checks.report import headline

    beyond = Tally("thm6", "beyond", outside=True)
    beyond.add(-1.0, "x")
    holds = Tally("thm3", "within")
    holds.add(1.0, "y")
    h = headline([beyond.verdict(), holds.verdict()], {})
    assert h.tone == "ok" and "Failing" not in h.text
    assert h.counts == {"holds": 1, "outside hypothesis": 1}
