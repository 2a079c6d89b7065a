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
    one = stats.paired_t_interval([-1.0])                   # one replicate: no interval, no win
    assert np.isnan(one.lo) and one.verdict == "undecided"


def test_window_se_is_std_of_differences_over_sqrt_n():
    rng = np.random.default_rng(0)
    a = rng.normal(5, 1, 400)
    b = a + rng.normal(0.02, 0.1, 400)                      # paired: shared window difficulty
    iv = stats.per_window_paired_se(a, b)
    assert iv.se == pytest.approx(np.std(a - b, ddof=1) / 20)
    assert iv.se < 0.1 / 20 * 1.2                           # pairing removes the window variance


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
    assert iv.mean == pytest.approx(0.5)                   # not the pooled 0.1


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
    df = pd.DataFrame({"lam": ["x"] * 6 + ["y"] * 6, "seed": [0, 1, 2] * 4,
                       "method": (["g"] * 3 + ["m"] * 3) * 2,
                       "value": [1, 1.1, 0.9, 2, 2.1, 2.05, 1, 2, 3, 1.5, 1.4, 3.2]})
    t = stats.paired_table(df, "g", ["m"]).set_index("lam")
    assert t.loc["x", "verdict"] == "g wins" and t.loc["y", "verdict"] == "undecided"
    assert t.loc["x", "mean"] == pytest.approx(-1.05) and t.loc["x", "n"] == 3
    one = stats.paired_table(df[df["seed"].ne(1) | df["method"].eq("g")], "g", ["m"])
    assert set(one["n"]) == {2}                               # unpaired seed 1 dropped
