"""Thm 9 (generalisation): the Rademacher estimates, the bound on fitted gates, excess vs m."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.exact import solve
from theory_checks import thm9
from theory_checks.fits import static_minimax


def test_tabular_rademacher_with_distinct_points_is_the_mean_max_of_two_signs():
    """Each outcome seen once, p = 2: sum_x max(s1, s2) / m has mean E max(s1, s2) = 1/2."""
    est = thm9.rademacher_tabular(np.ones(50, dtype=int), 2, np.random.default_rng(0), draws=400)
    assert est == pytest.approx(0.5, abs=0.03)  # s.e. = 0.5 / sqrt(50 * 400) ~ 0.004


def test_static_rademacher_of_a_single_gate_is_zero_and_grows_with_p():
    rng = np.random.default_rng(1)
    assert abs(thm9.rademacher_static(400, 1, rng, draws=2000)) < 0.01
    assert thm9.rademacher_static(400, 4, rng) > thm9.rademacher_static(400, 2, rng) > 0


@given(st.integers(0, 10_000), st.sampled_from([25, 400]))
def test_bound_holds_on_fitted_gates(seed, m):
    prob = instances.make("dirichlet", seed, **thm9.SIZES)
    best = {"tabular": solve(prob, support="union").value, "static": static_minimax(prob)["value"]}
    r = thm9.trial(prob, m, np.random.default_rng(seed), best)
    for name in ("tabular", "static"):
        assert r["fitted"][name]["margin"] > 0
        assert r["fitted"][name]["excess"] >= -1e-9  # nothing beats the best gate of its class
    # one tabular gate deviates no more than the sup over the class
    assert r["tabular"]["margin"] <= r["fitted"]["tabular"]["margin"] + 1e-12


def test_excess_shrinks_with_m():
    prob = instances.make("dirichlet", 3, **thm9.SIZES)
    best = {"tabular": solve(prob, support="union").value, "static": static_minimax(prob)["value"]}

    def mean_excess(m):
        return np.mean(
            [
                thm9.trial(prob, m, np.random.default_rng(t), best)["fitted"]["tabular"]["excess"]
                for t in range(10)
            ]
        )

    assert mean_excess(1600) < mean_excess(25) / 4


# --- the supremum over the gate class -----------------------------------------------------------


@given(st.integers(0, 10_000), st.sampled_from([10, 100]))
def test_exact_tabular_sup_dominates_every_gate_and_is_attained(seed, m):
    """sup_dev_tabular against brute force: random tabular gates never exceed it, and the
    extreme gate (per x, the expert at the chosen end of [min_k E_k, max_k E_k]) attains it."""
    from modgen_bench.problem import DiscreteProblem

    prob = instances.make("dirichlet", seed, **thm9.SIZES)
    rng = np.random.default_rng(seed)
    emp = DiscreteProblem.from_arrays(
        np.stack([rng.multinomial(m, Pk) for Pk in prob.P]) / m, prob.E
    )
    sup = thm9.sup_dev_tabular(prob, emp)
    diff = prob.P - emp.P
    for g in rng.dirichlet(np.ones(prob.p), size=(50, prob.N)):  # (50, N, p)
        pi = np.einsum("nj,jn->n", g, prob.E)
        assert np.all(diff @ -np.log(pi) <= sup + 1e-12)
    for k in range(prob.p):
        ends = np.where(diff[k] > 0, prob.E.min(axis=0), prob.E.max(axis=0))
        assert diff[k] @ -np.log(ends) == pytest.approx(sup[k], abs=1e-12)


def test_finite_class_rademacher_of_one_gate_is_zero_and_tabular_bounds_it():
    rng = np.random.default_rng(0)
    counts = np.array([5, 3, 0, 2])
    one = np.full((1, 4, 2), 0.5)
    assert thm9.rademacher_finite(counts, one, rng, draws=4000) == pytest.approx(
        0.0, abs=0.02
    )  # 4 s.e.
    gates = rng.dirichlet(np.ones(2), size=(20, 4))
    assert (
        thm9.rademacher_finite(counts, gates, np.random.default_rng(1), draws=4000)
        <= thm9.rademacher_tabular(counts, 2, np.random.default_rng(1), draws=4000) + 0.02
    )


def test_split_instances_beat_the_confidence_term_alone():
    """On `split` the exact sup deviation exceeds M sqrt(log(p/delta)/2m) at m = 25: the
    e^M Rademacher term is what keeps the bound true there."""
    prob = thm9.split_problem()
    M, C = thm9.constants(prob)
    over = 0
    for t in range(20):
        r = thm9.trial(prob, 25, np.random.default_rng(t))
        conf = M * np.sqrt(np.log(2 / thm9.DELTA) / 50)
        sup_dev = r["tabular"]["rhs"] - r["tabular"]["margin"]
        assert r["tabular"]["margin"] > 0
        over += sup_dev > conf
    assert over >= 10


def test_two_point_violation_rate_is_within_delta_and_significance_rule():
    rate = np.mean(thm9.two_point_margins(100, 20_000, np.random.default_rng(0)) < 0)
    assert rate < thm9.DELTA / 2  # Hoeffding is conservative, but not vacuous:
    assert rate > 0  # the two-point law reaches it
    assert not thm9.significant(5, 100) and thm9.significant(15, 100)


def test_check_holds_on_every_reading():
    verdicts = thm9.check(25, 0)
    assert [v.status for v in verdicts] == ["holds"] * 3
    for v in verdicts:  # a "holds" with violations says that delta allows them
        allowed = f"{v.violations} of {v.instances} trials exceed the bound"
        assert (allowed in v.note) == (v.violations > 0)
    assert any(v.violations for v in verdicts)  # the two-point reading reaches its bound


# --- power against a 10% violation rate ---------------------------------------------------------


def test_rule_power_uses_the_critical_count_of_significant():
    """rule_power's critical count is the smallest count `significant` flags."""
    for n in (5, 22, 120, thm9.TRIALS, 1000):
        crit = next(v for v in range(1, n + 2) if v > n or thm9.significant(v, n))
        assert thm9.rule_power(n, rate=1.0)[0] == (1.0 if crit <= n else 0.0)
        # P(Bin(n, delta) >= crit) < alpha <= P(Bin(n, delta) >= crit - 1)
        assert thm9.rule_power(n, rate=thm9.DELTA)[0] < thm9.ALPHA


def test_trials_catch_a_ten_percent_violation_rate_with_probability_point_nine():
    """Seeing one violation w.p. 0.9 at rate 0.1 needs log(0.1)/log(0.9) -> 22 trials, but delta
    allows violations: the binomial rule needs TRIALS, and every larger count keeps the power."""
    assert int(np.ceil(np.log(0.1) / np.log(0.9))) == 22
    assert thm9.rule_power(22)[0] < 0.1 and thm9.rule_power(120)[0] < 0.5  # the old budget
    ns = np.arange(thm9.TRIALS, 3 * thm9.TRIALS)
    assert thm9.rule_power(ns).min() >= 0.9 > thm9.rule_power(thm9.TRIALS - 1)[0]


@pytest.mark.parametrize("n", [5, 50])
def test_every_reading_draws_at_least_trials(n):
    assert all(v.instances >= thm9.TRIALS for v in thm9.check(n, 0))


def test_planted_ten_percent_violations_are_caught_by_simulation(monkeypatch):
    """End to end: the real tabular and finite margins of `check(5, 0)` with violations planted
    at rate 0.1 by `planted` (2,000 plantings, vectorised): flagged at the exact power, >= 0.9."""
    from theory_checks.verdict import Tally

    kept = {"tabular": [], "finite": []}

    class Recording(Tally):
        def add(self, margin, *args, **kwargs):
            kept["tabular" if "tabular" in self.reading else "finite"].append(margin)
            super().add(margin, *args, **kwargs)

    tab, fin = Recording("thm9", "tabular"), Recording("thm9", "finite")
    thm9._class_readings(5, 0, tab, fin)
    rng = np.random.default_rng(0)
    for margins in kept.values():
        margins = np.array(margins)
        n = len(margins)
        assert n >= thm9.TRIALS and not np.any(margins < 0)
        violations = ((rng.random((2000, n)) < 0.1) | (margins < 0)).sum(axis=1)
        caught = np.mean([thm9.significant(int(v), n) for v in violations])
        exact = thm9.rule_power(n)[0]
        assert abs(caught - exact) < 4 * np.sqrt(exact * (1 - exact) / 2000)
        assert caught >= 0.88 and exact >= 0.9


def test_planted_violations_fail_the_check(monkeypatch):
    monkeypatch.setattr(thm9, "MUTATION", {"plant": 0.1})
    v = {v.reading: v for v in thm9.check(5, 0)}
    assert v[f"tabular class, exact sup over G, delta={thm9.DELTA}"].status == "fails"
    monkeypatch.setattr(thm9, "MUTATION", {"plant": 0.5 * thm9.DELTA})
    assert all(v.status == "holds" for v in thm9.check(5, 0))  # within delta: allowed
