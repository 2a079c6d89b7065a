"""modgen_bench.crossover: the fit recovers a planted model and r* with a covering interval."""

import numpy as np
import pytest

from modgen_bench import crossover


def _plant(a, b, c, e=0.0, noise=0.01, seeds=3, rng=0):
    rng = np.random.default_rng(rng)
    rs, Bs = [0.25, 0.5, 1.0, 1.7, 2.6], [100.0, 400.0]
    r, B = (
        np.array(v, float)
        for v in zip(*[(x, y) for x in rs for y in Bs for _ in range(seeds)], strict=True)
    )
    delta = (
        a + b * np.log(r) + c * np.log(B) + e * np.log(r) * np.log(B) + rng.normal(0, noise, r.size)
    )
    return delta, r, B


def test_fit_recovers_coefficients_and_r_star():
    delta, r, B = _plant(-0.1, 0.2, 0.01, noise=0.0)
    fit = crossover.fit_delta(delta, r, B)
    np.testing.assert_allclose(fit.coef, [-0.1, 0.2, 0.01], atol=1e-10)
    # 0 = -0.1 + 0.2 log r + 0.01 log 100  =>  log r* = (0.1 - 0.01 log 100) / 0.2
    assert crossover.crossover_r(fit, 100.0) == pytest.approx(
        np.exp((0.1 - 0.01 * np.log(100)) / 0.2)
    )


def test_interaction_term_moves_r_star_with_budget():
    delta, r, B = _plant(-0.1, 0.2, 0.0, e=0.02, noise=0.0)
    fit = crossover.fit_delta(delta, r, B, interaction=True)
    assert fit.coef[3] == pytest.approx(0.02)
    assert crossover.crossover_r(fit, 400.0) < crossover.crossover_r(fit, 100.0)


def test_one_budget_cannot_identify_the_budget_term():
    delta, r, B = _plant(-0.1, 0.2, 0.0)
    keep = B == 100.0
    with pytest.raises(ValueError, match="rank"):
        crossover.fit_delta(delta[keep], r[keep], B[keep])


def _plant_seeds(a_sd, noise=0.005, seeds=3, rng=0):
    """delta = a_s - 0.1 + 0.2 log r + 0.01 log B with a seed effect a_s ~ N(0, a_sd) shared by all
    of that seed's cells (the gate and experts a seed trains), plus small cell noise."""
    rng = np.random.default_rng(rng)
    rs, Bs = [0.25, 0.5, 1.0, 1.7, 2.6], [100.0, 400.0]
    rows = [(s, x, y) for s in range(seeds) for x in rs for y in Bs]
    s, r, B = (np.array(v, float) for v in zip(*rows, strict=True))
    shift = rng.normal(0, a_sd, seeds)[s.astype(int)]
    delta = shift - 0.1 + 0.2 * np.log(r) + 0.01 * np.log(B) + rng.normal(0, noise, r.size)
    return delta, r, B, s


def _cells(delta, r, B, s, at):
    """Per-r cell at budget ``at``: mean over seeds, s.e. and t interval."""
    from modgen_bench.stats import paired_t_interval

    keep = B == at
    rs = np.unique(r[keep])
    ivs = [paired_t_interval(delta[keep & (r == x)]) for x in rs]
    return rs, *(np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "se", "lo", "hi"))


def test_checked_crossover_refuses_a_fit_that_crosses_where_the_cells_do_not():
    """Cells: gate better by 0.5 at r = 0.25, by 0.05 (decidedly) at every other r; the additive
    fit in log r crosses 0 inside the sweep where the cells are all negative: no r* is stated."""
    rng = np.random.default_rng(0)
    rs, Bs = [0.25, 0.5, 1.0, 1.7, 2.6], [100.0, 400.0]
    rows = [(sd, x, y) for sd in range(5) for x in rs for y in Bs]
    s, r, B = (np.array(v, float) for v in zip(*rows, strict=True))
    delta = np.where(r == 0.25, -0.5, -0.05) + rng.normal(0, 0.005, r.size)
    fit = crossover.fit_delta(delta, r, B)
    assert 0.25 < crossover.crossover_r(fit, 100.0) < 2.6  # the fit does cross ...
    out = crossover.checked_crossover(delta, r, B, s, 100.0, *_cells(delta, r, B, s, 100.0))
    assert out.status == "gate better at every r"  # ... the cells never do
    assert np.isnan(out.r_star) and np.isnan(out.lo) and "no crossover" in out.text
    assert out.contradicted_cells >= 1 and out.lack_of_fit_p < 0.05


def test_checked_crossover_withholds_a_misspecified_fit_inside_a_real_crossing():
    """Cells change sign between 1.0 and 1.7 but the step shape is not log-linear: the bracket is
    stated, the fit's r* is not."""
    rng = np.random.default_rng(1)
    rs, Bs = [0.25, 0.5, 1.0, 1.7, 2.6], [100.0, 400.0]
    rows = [(sd, x, y) for sd in range(5) for x in rs for y in Bs]
    s, r, B = (np.array(v, float) for v in zip(*rows, strict=True))
    delta = np.select([r <= 0.25, r <= 1.0], [-0.9, -0.05], 0.05) + rng.normal(0, 0.005, r.size)
    out = crossover.checked_crossover(delta, r, B, s, 100.0, *_cells(delta, r, B, s, 100.0))
    assert (out.bracket_lo, out.bracket_hi) == (1.0, 1.7)
    assert out.status == "crossing (fit rejected)" and np.isnan(out.r_star)
    assert "not reported" in out.text


def test_checked_crossover_states_r_star_with_a_covering_fieller_interval():
    true = np.exp((0.1 - 0.01 * np.log(100)) / 0.2)
    miss = 0
    for k in range(40):
        delta, r, B, s = _plant_seeds(0.03, seeds=5, rng=k)
        out = crossover.checked_crossover(delta, r, B, s, 100.0, *_cells(delta, r, B, s, 100.0))
        if out.status != "crossing":
            continue  # a crossing the cells cannot resolve is not stated
        assert out.bracket_lo <= out.r_star <= out.bracket_hi
        miss += not (out.lo <= true <= out.hi)
    assert miss <= 6, miss


def test_undecided_cells_never_say_the_sign_never_changes():
    r = np.array([0.25, 1.0, 2.6])
    assert crossover.sign_bracket(r, [-1, -1, -1], [1, 1, 1])[0] == "undecided"
    assert crossover.sign_bracket(r, [-1, -0.5, 0.1], [-0.5, 0.1, 0.2])[0] == "crossing"
    assert crossover.sign_bracket(r, [0.1, -1, -2], [0.2, -0.5, -1])[0] == "reverse crossing"
    assert crossover.sign_bracket(r, [-1, -1, -1], [-0.1, 0.1, -0.1])[0] == "undecided"


def test_fieller_matches_the_delta_method_when_the_slope_is_sharp():
    """Precise D: Fieller's interval is close to N/D +- t se(N/D) by the delta method."""
    from scipy import stats

    rng = np.random.default_rng(2)
    coefs = np.c_[rng.normal(-0.1, 0.01, 8), rng.normal(0.2, 0.001, 8), np.zeros(8)]
    point, lo, hi = crossover.fieller_log_r_star(coefs, 1.0)
    N, D = -coefs[:, 0], coefs[:, 1]
    assert point == pytest.approx(N.mean() / D.mean())
    half = stats.t.ppf(0.975, 7) * N.std(ddof=1) / np.sqrt(8) / D.mean()
    assert lo == pytest.approx(point - half, rel=0.05)
    assert hi == pytest.approx(point + half, rel=0.05)
    flat = np.c_[rng.normal(-0.1, 0.01, 4), rng.normal(0.0, 0.05, 4), np.zeros(4)]
    assert np.isnan(crossover.fieller_log_r_star(flat, 1.0)[1])  # unbounded: not stated
