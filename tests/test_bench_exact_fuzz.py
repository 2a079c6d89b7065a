"""`bench exact` columns (passes, memory, warm repeats) and `bench fuzz` counts."""

import numpy as np

from modgen_bench.bench.exact import bench_exact, pass_seconds, speedups
from modgen_bench.bench.fuzz import FAMILIES, format_counts, fuzz, random_instance
from modgen_bench.cli import main


def test_bench_exact_reports_passes_memory_and_repeats():
    df = bench_exact(
        sizes=(300,),
        ps=(3,),
        cvxpy_max_n=300,
        structured=False,
        speedup_case=None,
        repeats=2,
        log=lambda *_: None,
    )
    wf = df[df.method == "waterfill"].iloc[0]
    assert wf.status == "optimal" and wf.seconds_min <= wf.seconds_median
    assert np.isclose(wf.passes_min, wf.seconds_min / (wf.pass_ms / 1e3))
    assert wf["mem_peak/input"] >= 1.0
    sp = speedups(df)
    assert len(sp) == 1 and sp.speedup.iloc[0] > 1 and sp.abs_value_diff.iloc[0] < 1e-6


def test_speedups_keep_a_case_where_cvxpy_has_no_value():
    """An inaccurate cvxpy answer (value NaN) keeps its timing row, difference left empty."""
    import pandas as pd

    rows = [
        dict(family="dirichlet", p=2, N=20_000, method="waterfill", seconds_min=0.01, value=0.3),
        dict(family="dirichlet", p=2, N=20_000, method="cvxpy", seconds_min=1.0, value=np.nan),
    ]
    sp = speedups(pd.DataFrame(rows))
    assert len(sp) == 1 and np.isclose(sp.speedup.iloc[0], 100.0)
    assert np.isnan(sp.abs_value_diff.iloc[0])


def test_pass_seconds_is_positive_and_small():
    from modgen_bench import instances

    assert 0 < pass_seconds(instances.make("dirichlet", 0, p=2, N=1000)) < 0.1


def test_fuzz_families_draw_valid_problems_of_every_size():
    """p from 1 to 64 and N from 1 to 20,000, most draws small."""
    rng = np.random.default_rng(0)
    small = 0
    for _ in range(10):
        for fam in FAMILIES:
            prob, support, desc = random_instance(rng, fam)
            assert 1 <= prob.p <= 64 and 1 <= prob.N <= 20_000 and support in ("domains", "union")
            assert desc.startswith(fam)
            small += prob.p <= 16 and prob.N <= 80
    assert small >= 0.6 * 10 * len(FAMILIES)


def test_fuzz_counts_every_instance_and_finds_nothing_wrong():
    res = fuzz(instances=40, seed=3)
    c = res["counts"]
    assert sum(c[k] for k in ("optimal", "inaccurate", "infeasible")) == 40
    assert c["wrong"] == 0 and c["inaccurate"] == 0 and res["worst_gap"] < 1e-7
    assert "wrong 0" in format_counts(res)


def test_bench_fuzz_cli(capsys):
    assert main(["bench", "fuzz", "--instances", "10", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "fuzz: 10 instances (seed 1)" in out and "wrong 0" in out
