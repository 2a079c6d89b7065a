"""The leaderboard from tidy rows (modgen_bench.leaderboard): a golden test of its order,
intervals, Holm verdicts and headline, computed by hand from the given rows."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modgen_bench.leaderboard import (
    WORST,
    holm,
    leaderboard,
    leaderboard_headline,
    leaderboard_section,
    leaderboard_table,
)

V1, V2, U = "1.0,0.0", "0.0,1.0", "0.5,0.5"

# per replicate (3 replicates): NLL on vertex 1, vertex 2 (the uniform mixture is their mean)
NLL = {
    "gate_excess_logZ": [(2.0, 3.0), (2.1, 3.1), (2.0, 3.2)],
    "mono_uniform": [(1.8, 3.4), (1.9, 3.5), (1.7, 3.5)],
    "const_gate": [(2.1, 3.05), (2.2, 3.1), (2.1, 3.3)],
    "mono_groupdro": [(1.9, 2.9), (2.0, 3.0), (1.95, 3.1)],
    "gate_excess": [(0.1, 0.1)] * 3,  # unnormalised: never on the board
}


def _rows():
    rows = []
    for m, reps in NLL.items():
        for r, (a, b) in enumerate(reps):
            for lam, v in ((V1, a), (V2, b), (U, (a + b) / 2)):
                rows.append(
                    {
                        "case": "test",
                        "method": m,
                        "metric": "nll_per_token",
                        "value": v,
                        "lam": lam,
                        "seed": r,
                        "resample": 0,
                    }
                )
    rows += [
        {"case": "cost", "method": m, "metric": k, "value": v, "lam": "", "seed": 0, "resample": 0}
        for m in NLL
        for k, v in (("params_ratio", 1.0), ("compute_ratio", 2.0), ("token_ratio", 3.0))
    ]
    return pd.DataFrame(rows)


def _t(d):
    d = np.asarray(d, float)
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return d.mean(), d.mean() - half, d.mean() + half


def test_order_intervals_and_verdicts_are_computed_from_the_rows():
    lb = leaderboard(_rows(), names=["a", "b"])
    worst = {m: [max(v) for v in reps] for m, reps in NLL.items()}
    # order by mean worst-vertex NLL: groupdro 3.0, gate 3.1, const 3.15, mono 3.4667
    assert lb.order == ["mono_groupdro", "gate_excess_logZ", "const_gate", "mono_uniform"]
    c = lb.cells.set_index(["method", "mixture"])
    for m in ("mono_groupdro", "const_gate", "mono_uniform"):
        mean, lo, hi = _t(np.subtract(worst[m], worst["gate_excess_logZ"]))
        assert c.loc[(m, WORST), "delta"] == pytest.approx(mean, abs=1e-12)
        assert (c.loc[(m, WORST), "lo"], c.loc[(m, WORST), "hi"]) == pytest.approx(
            (lo, hi), abs=1e-12
        )
        assert c.loc[(m, WORST), "mean"] == pytest.approx(np.mean(worst[m]), abs=1e-12)
        d_a = [x[0] - g[0] for x, g in zip(NLL[m], NLL["gate_excess_logZ"], strict=True)]
        assert c.loc[(m, "a"), "delta"] == pytest.approx(np.mean(d_a), abs=1e-12)
        assert c.loc[(m, "a"), "lo"] == pytest.approx(_t(d_a)[1], abs=1e-12)
    assert set(lb.mixtures) == {WORST, "uniform", "a", "b"}
    # mono_uniform: better on a (-0.2, -0.2, -0.3), worse on b: mixed -> undecided
    assert lb.every["mono_uniform"] == "undecided"
    # groupdro: d_a = (-.1, -.1, -.05), d_b = (-.1, -.1, -.1) (se 0), uniform (-.1, -.1, -.075)
    p_a = stats.t.cdf(
        *[(np.mean(d) / (np.std(d, ddof=1) / np.sqrt(3)), 2) for d in [[-0.1, -0.1, -0.05]]][0]
    )
    p_u = stats.t.cdf(
        *[(np.mean(d) / (np.std(d, ddof=1) / np.sqrt(3)), 2) for d in [[-0.1, -0.1, -0.075]]][0]
    )
    assert lb.every["mono_groupdro"] == (
        "better" if max(holm([p_a, 0.0, p_u])) <= 0.05 else "undecided"
    )
    assert "gate_excess" not in lb.order


def test_holm_adjusts_by_the_step_down_rule():
    adj = holm([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.09, 0.09 (running max of 0.08), 0.2
    assert adj == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5]) == pytest.approx([0.5])


def test_headline_names_the_best_and_the_free_baseline_beside_a_trained_winner():
    lb = leaderboard(_rows())
    text = leaderboard_headline(lb)
    assert "**mono_groupdro**" in text and "3.0000" in text
    mean, lo, hi = _t(
        np.subtract(
            [max(v) for v in NLL["mono_groupdro"]], [max(v) for v in NLL["gate_excess_logZ"]]
        )
    )
    assert f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]" in text
    assert ("excludes 0" in text) == (hi < 0 or lo > 0)
    # const_gate - groupdro on the worst vertex: (3.05, 3.1, 3.3) - (2.9, 3.0, 3.1): above 0
    d, lo2, hi2 = _t(np.subtract([3.05, 3.1, 3.3], [2.9, 3.0, 3.1]))
    assert lo2 > 0
    assert f"Best free baseline: const_gate, 3.1500 (const_gate - mono_groupdro = {d:+.4f} " in text
    assert ("does as well" in text) == (lo2 <= 0)


def test_a_free_baseline_the_winner_is_not_shown_to_beat_is_said_so():
    df = _rows()
    m = (df["method"] == "const_gate") & (df["case"] == "test")
    df.loc[m, "value"] -= 0.2  # the constant gate now the lowest
    lb = leaderboard(df)
    assert lb.order[0] == "const_gate"
    df.loc[m, "value"] += 0.16  # 0.04 below the old values: close to groupdro
    text = leaderboard_headline(leaderboard(df))
    assert "**mono_groupdro**" in text
    assert "mono_groupdro is not shown to beat the free baseline" in text and "includes 0" in text


def test_table_and_section_carry_ratios_and_the_convention(tmp_path):
    df = _rows()
    lb = leaderboard(df)
    costs = df[df["case"] == "cost"].pivot_table(index="method", columns="metric", values="value")
    t = leaderboard_table(lb, costs, "params")
    assert list(t["method"]) == lb.order
    assert set(t["compute_ratio"]) == {"2.00"} and set(t["match"]) == {"params"}
    sec = leaderboard_section(df, tmp_path, "[monolith matched by params]", "x")
    assert (
        "[monolith matched by params]" in sec.tables[0][0]
        and "matched by params" in sec.figures[0][0]
    )
    assert (tmp_path / "x_leaderboard.png").is_file()


def test_one_replicate_uses_the_per_window_interval_and_claims_nothing_on_the_worst_vertex():
    df = _rows()
    df = df[df["seed"] == 0].copy()
    se = {V1: 0.01, V2: 0.02, U: 0.015}
    for lam, s in se.items():
        d = (
            df[(df["method"] == "mono_uniform") & (df["lam"] == lam) & (df["case"] == "test")][
                "value"
            ].iloc[0]
            - df[
                (df["method"] == "gate_excess_logZ") & (df["lam"] == lam) & (df["case"] == "test")
            ]["value"].iloc[0]
        )
        df = pd.concat(
            [
                df,
                pd.DataFrame(
                    [
                        {
                            "case": "paired",
                            "method": "mono_uniform-vs-gate_excess_logZ",
                            "metric": "delta",
                            "value": d,
                            "lam": lam,
                            "seed": 0,
                            "resample": 0,
                        },
                        {
                            "case": "paired",
                            "method": "mono_uniform-vs-gate_excess_logZ",
                            "metric": "delta_window_se",
                            "value": s,
                            "lam": lam,
                            "seed": 0,
                            "resample": 0,
                        },
                    ]
                ),
            ]
        )
    lb = leaderboard(df, names=["a", "b"])
    c = lb.cells.set_index(["method", "mixture"])
    z = stats.norm.ppf(0.975)
    assert c.loc[("mono_uniform", "a"), "delta"] == pytest.approx(-0.2)
    assert c.loc[("mono_uniform", "a"), "lo"] == pytest.approx(-0.2 - z * 0.01)
    assert c.loc[("mono_uniform", "b"), "hi"] == pytest.approx(0.4 + z * 0.02)
    assert np.isnan(c.loc[("mono_uniform", WORST), "lo"])  # no pairing for a max of means
    assert np.isnan(c.loc[("mono_groupdro", "a"), "lo"])  # no paired rows: no interval
    assert lb.every["mono_uniform"] == "undecided"
    text = leaderboard_headline(lb)
    assert "(no interval)" in text and "not shown to beat it" in text
