"""modgen_bench.stats: paired intervals against closed forms and coverage on simulated data."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sst

from modgen_bench import stats


def test_t_interval_matches_scipy_closed_form():
    a, b = np.array([5.0, 5.2, 4.9, 5.1]), np.array([5.1, 5.0, 5.3, 5.2])
    iv = stats.paired_t_interval(a, b)
    d = a - b
    lo, hi = sst.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sst.sem(d))
    assert (iv.lo, iv.hi, iv.n) == (pytest.approx(lo), pytest.approx(hi), 4)
    assert iv.verdict == "undecided"


def test_win_only_when_the_interval_excludes_zero():
    assert stats.paired_t_interval([-0.3, -0.31, -0.29]).verdict == "a wins"
    assert stats.paired_t_interval([0.3, 0.31, 0.29]).verdict == "b wins"
    assert stats.paired_t_interval([-0.3, 0.2, -0.1]).verdict == "undecided"
    one = stats.paired_t_interval([-1.0])  # one replicate: no interval, no win
    assert np.isnan(one.lo) and one.verdict == "undecided"


def test_window_se_is_std_of_differences_over_sqrt_n():
    rng = np.random.default_rng(0)
    a = rng.normal(5, 1, 400)
    b = a + rng.normal(0.02, 0.1, 400)  # paired: shared window difficulty
    iv = stats.per_window_paired_se(a, b)
    assert iv.se == pytest.approx(np.std(a - b, ddof=1) / 20)
    assert iv.se < 0.1 / 20 * 1.2  # pairing removes the window variance


@given(st.integers(0, 10_000))
def test_bootstrap_interval_agrees_with_the_normal_one(seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.01, 0.1, 500)
    boot = stats.paired_bootstrap(d, rng=seed, n_boot=2000)
    se = stats.per_window_paired_se(d)
    assert boot.mean == pytest.approx(d.mean())
    assert abs(boot.lo - se.lo) < 0.3 * (se.hi - se.lo)
    assert abs(boot.hi - se.hi) < 0.3 * (se.hi - se.lo)


def test_grouped_bootstrap_weights_groups_equally():
    d = np.r_[np.zeros(90), np.ones(10)]
    groups = np.r_[np.zeros(90, int), np.ones(10, int)]
    iv = stats.paired_bootstrap(d, groups=groups, rng=0, n_boot=200)
    assert iv.mean == pytest.approx(0.5)  # not the pooled 0.1


def test_t_interval_coverage_is_about_95_percent():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(2000):
        iv = stats.paired_t_interval(rng.normal(0.2, 1.0, 5))
        covered += iv.lo <= 0.2 <= iv.hi
    assert 0.93 <= covered / 2000 <= 0.97


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_t_interval([1.0, np.nan])
    with pytest.raises(ValueError, match="no pairs"):
        stats.per_window_paired_se([])


def test_paired_table_pairs_by_seed_and_names_the_winner():
    import pandas as pd

    df = pd.DataFrame(
        {
            "lam": ["x"] * 6 + ["y"] * 6,
            "seed": [0, 1, 2] * 4,
            "method": (["g"] * 3 + ["m"] * 3) * 2,
            "value": [1, 1.1, 0.9, 2, 2.1, 2.05, 1, 2, 3, 1.5, 1.4, 3.2],
        }
    )
    t = stats.paired_table(df, "g", ["m"]).set_index("lam")
    assert t.loc["x", "verdict"] == "g wins" and t.loc["y", "verdict"] == "undecided"
    assert t.loc["x", "mean"] == pytest.approx(-1.05) and t.loc["x", "n"] == 3
    one = stats.paired_table(df[df["seed"].ne(1) | df["method"].eq("g")], "g", ["m"])
    assert set(one["n"]) == {2}  # unpaired seed 1 dropped


def test_holm_golden_example():
    """Holm 1979 by hand: p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005, 0.01, 0.03, 0.04
    -> 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(1 x 0.04, 0.06) = 0.06."""
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5]), [0.5])
    np.testing.assert_allclose(stats.holm([0.9, 0.8]), [1.0, 1.0])
    with pytest.raises(ValueError, match="holm"):
        stats.holm([0.1, np.nan])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_is_monotone_and_at_least_the_raw_p(p):
    adj, raw = stats.holm(p), np.asarray(p)
    assert np.all(adj >= raw - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
    assert adj.min() == pytest.approx(min(1.0, len(p) * raw.min()))


def _iv(mean, p, n=5):
    """A 'seeds+windows' interval on n seeds whose two-sided t p-value is ``p``."""
    from scipy import stats as st

    se = abs(mean) / st.t.isf(p / 2, n - 1)
    return stats.Interval(mean, se, mean - 2 * se, mean + 2 * se, n, "seeds+windows")


def test_every_mixture_applies_holm_not_the_raw_intervals():
    """Four mixtures, all gate-better at raw p < 0.05 (0.01, 0.04, 0.03, 0.005): the unadjusted
    rule would say 'supported'; Holm adjusts to (0.03, 0.06, 0.06, 0.02): undecided."""
    labels = ["1,0,0", "0,1,0", "0,0,1", "uniform"]
    fam = stats.every_mixture(labels, [_iv(-0.1, p) for p in (0.01, 0.04, 0.03, 0.005)])
    assert all(stats.interval_pvalue(iv) < 0.05 for iv in fam.intervals)
    np.testing.assert_allclose(fam.p_holm, [0.03, 0.06, 0.06, 0.02], rtol=1e-6)
    assert fam.verdict == "undecided"
    sharp = stats.every_mixture(labels, [_iv(-0.1, p) for p in (0.01, 0.012, 0.011, 0.005)])
    assert sharp.verdict == "supported"
    # one mixture where the monolith is better, but only at raw p = 0.03 of 4: not contradicted
    mixed = stats.every_mixture(
        labels, [_iv(-0.1, 0.001), _iv(0.1, 0.03), _iv(-0.1, 0.5), _iv(-0.1, 0.001)]
    )
    assert mixed.verdict == "undecided"
    worse = stats.every_mixture(
        labels, [_iv(-0.1, 0.001), _iv(0.1, 0.001), _iv(-0.1, 0.5), _iv(-0.1, 0.001)]
    )
    assert worse.verdict == "contradicted"


def test_two_level_interval_adds_the_shared_window_error():
    """Seeds agreeing exactly leave only the windows' s.e.; no window error gives the t interval."""
    iv = stats.two_level_interval([-0.1, -0.1, -0.1], [0.02, 0.02, 0.02])
    assert iv.se == pytest.approx(0.02) and iv.method == "seeds+windows"
    t = stats.paired_t_interval([-0.1, -0.12, -0.08])
    two = stats.two_level_interval([-0.1, -0.12, -0.08], [0.0, 0.0, 0.0])
    assert (two.lo, two.hi) == pytest.approx((t.lo, t.hi))
    both = stats.two_level_interval([-0.1, -0.12, -0.08], [0.01, 0.01, 0.01])
    assert both.se == pytest.approx(np.hypot(t.se, 0.01))


def test_two_level_interval_gives_no_interval_for_one_seed():
    """One seed: the seed error is unknown, so no interval (the window s.e. alone would claim
    one)."""
    iv = stats.two_level_interval([-0.1], [0.001])
    assert iv.n == 1 and np.isnan(iv.lo) and np.isnan(iv.hi) and np.isnan(iv.se)
    assert np.isnan(stats.interval_pvalue(iv))


def test_two_level_interval_covers_with_shared_windows():
    """Simulated: 3 seeds share one window draw W ~ N(0, 0.02); the seeds' t interval alone misses
    the truth far more than 5% of the time, the two-level one about 5% or less."""
    rng = np.random.default_rng(0)
    miss_t = miss_2 = 0
    for _ in range(400):
        W = rng.normal(0, 0.02)
        d = W + rng.normal(0, 0.01, 3)
        miss_t += not (stats.paired_t_interval(d).lo <= 0 <= stats.paired_t_interval(d).hi)
        two = stats.two_level_interval(d, np.full(3, 0.02))
        miss_2 += not (two.lo <= 0 <= two.hi)
    assert miss_t > 60 and miss_2 <= 30, (miss_t, miss_2)
