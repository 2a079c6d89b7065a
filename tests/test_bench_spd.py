"""`bench spd` warms up, then times >= 3 repeats and reports their min and median."""

import pytest

from modgen_bench.algorithms import bench


def test_bench_spd_warms_up_then_repeats(monkeypatch):
    calls = []
    real = bench.run_method

    def counting(problem, method, steps, **kw):
        calls.append((method, steps))
        return real(problem, method, steps=steps, **kw)

    monkeypatch.setattr(bench, "run_method", counting)
    df = bench.bench_discrete(sizes=((2, 10),), methods=("spd", "alg1"), steps=5, repeats=3)
    assert calls == [("spd", 2)] + [("spd", 5)] * 3 + [("alg1", 2)] + [("alg1", 5)] * 3
    assert list(df["repeats"]) == [3, 3]
    assert (df["ms_per_step_min"] <= df["ms_per_step_median"]).all()
    assert (df["ms_per_step_min"] > 0).all() and (df["suboptimality"] >= -1e-9).all()
    assert df.loc[df.method == "spd", "items_per_s"].iloc[0] == pytest.approx(
        2
        * bench.SPDConfig.per_domain
        / (df.loc[df.method == "spd", "ms_per_step_min"].iloc[0] / 1e3)
    )


def test_bench_spd_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench.bench_discrete(sizes=((2, 10),), methods=("spd",), steps=2, repeats=0)
