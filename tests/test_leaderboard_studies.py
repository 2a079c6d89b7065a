"""The scaling and successor leaderboards from committed tiny rows (golden): each study's rows
are turned into the shared leaderboard's, and its order, intervals, ties and references are
checked against values computed by hand from the same rows."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modgen_bench.leaderboard import (
    TIE_TOL,
    WORST,
    free_baseline_text,
    leaderboard,
    leaderboard_headline,
    leaderboard_table,
    tie_text,
)
from modgen_bench.suites import discover, load_plugin

ROOT = Path(__file__).resolve().parents[1]
board = load_plugin(ROOT / "real_world" / "scaling" / "board.py")

V = ["1,0,0", "0,1,0", "0,0,1"]
U = "0.3333,0.3333,0.3333"

#: scaling cell rows, NLL per token on the three vertices per seed (the uniform is their mean)
SCALING = {
    "gate": [(2.0, 3.0, 2.5), (2.1, 3.1, 2.4), (2.0, 3.2, 2.6)],
    "const": [(2.1, 3.05, 2.6), (2.2, 3.1, 2.5), (2.1, 3.3, 2.7)],
    "gate_fixed_best": [(2.3, 2.95, 2.9), (2.4, 3.0, 2.8), (2.3, 3.1, 3.0)],
}
#: (convention, r_target) -> per seed vertex NLLs of the uniform monolith
MONO = {
    ("compute", 0.26): [(2.6, 3.4, 3.0), (2.7, 3.5, 3.1), (2.6, 3.6, 3.2)],
    ("tokens", 1.0): [(1.8, 2.9, 2.4), (1.9, 2.95, 2.3), (1.8, 3.0, 2.5)],
}
BASE = dict(case="t3", expert_d=8, budget=4, resample=0, scale="pilot")


def _nll_rows(method, reps, **extra):
    rows = []
    for seed, vals in enumerate(reps):
        for lam, v in zip(V, vals, strict=True):
            rows.append(
                {
                    **BASE,
                    "method": method,
                    "metric": "nll_per_token",
                    "value": v,
                    "lam": lam,
                    "seed": seed,
                    **extra,
                }
            )
        rows.append(
            {
                **BASE,
                "method": method,
                "metric": "nll_per_token",
                "value": float(np.mean(vals)),
                "lam": U,
                "seed": seed,
                **extra,
            }
        )
    return rows


def _scaling_rows() -> pd.DataFrame:
    rows = []
    for m, reps in SCALING.items():
        rows += _nll_rows(m, reps)
    # the Bayes router equals the constant gate to rounding (computed independently)
    rows += _nll_rows("bayes_router", [tuple(v + 1e-12 for v in r) for r in SCALING["const"]])
    for (conv, r), reps in MONO.items():
        ratios = dict(
            params_ratio=r * 0.9,
            compute_ratio=1.0 if conv == "compute" else 2.0,
            token_ratio=1.0 if conv == "tokens" else 0.5,
        )
        rows += _nll_rows("mono", reps, convention=conv, r_target=r, r=r, **ratios)
    for seed in range(3):
        for name, w in zip(("code", "bible", "ref"), (0.2, 0.5, 0.3), strict=True):
            rows.append(
                {
                    **BASE,
                    "method": "gate_fixed_best",
                    "metric": f"w_{name}",
                    "value": w,
                    "lam": "",
                    "seed": seed,
                }
            )
    return pd.DataFrame(rows)


def _t(d):
    d = np.asarray(d, float)
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return d.mean(), d.mean() - half, d.mean() + half


def test_scaling_board_order_intervals_and_the_stated_tie():
    g = _scaling_rows()
    frame = board.board_frame(g)
    lb = leaderboard(frame, names=board._names(g))
    worst = {m: [max(v) for v in reps] for m, reps in SCALING.items()}
    worst.update({board.mono_name(*k): [max(v) for v in reps] for k, reps in MONO.items()})
    names = {"gate": "gate_excess_logZ", "const": "const_gate"}
    worst = {names.get(m, m): v for m, v in worst.items()}
    # by mean worst vertex: tokens r1 (2.95), fixed (3.0167), gate (3.1), const (3.15), compute
    assert lb.order == sorted(worst, key=lambda m: np.mean(worst[m]))
    assert lb.order[0] == "mono_uniform_tokens_r1" and lb.order[-1] == "mono_uniform_compute_r0.26"
    assert lb.ties == {"const_gate": ["bayes_router"]} and "bayes_router" not in lb.order
    c = lb.cells.set_index(["method", "mixture"])
    for m in worst:
        if m == "gate_excess_logZ":
            continue
        mean, lo, hi = _t(np.subtract(worst[m], worst["gate_excess_logZ"]))
        assert c.loc[(m, WORST), ["delta", "lo", "hi"]].tolist() == pytest.approx(
            [mean, lo, hi], abs=1e-12
        )
    assert lb.mixtures == [WORST, "uniform", "code", "bible", "ref"]
    d = [a[1] - b[1] for a, b in zip(MONO[("tokens", 1.0)], SCALING["gate"], strict=True)]
    assert c.loc[("mono_uniform_tokens_r1", "bible"), "lo"] == pytest.approx(_t(d)[1], abs=1e-12)
    t = leaderboard_table(
        lb,
        frame[frame["case"] == "cost"].pivot_table(
            index="method", columns="metric", values="value"
        ),
        "",
    )
    row = t.set_index("method").loc["const_gate"]
    assert row["identical to"] == "bayes_router" and row["compute_ratio"] == "-"
    assert t.set_index("method").loc["mono_uniform_compute_r0.26", "params_ratio"] == "0.23"
    assert "Tie: bayes_router equals const_gate" in tie_text(lb)
    assert "uniform prior" in tie_text(lb)


def test_scaling_board_gap_to_the_best_free_baseline():
    lb = leaderboard(board.board_frame(_scaling_rows()))
    gap = board.gate_vs_free(lb)
    assert gap.baseline == "gate_fixed_best"  # 3.0167 < const_gate's 3.15
    w_g = [max(v) for v in SCALING["gate"]]
    w_f = [max(v) for v in SCALING["gate_fixed_best"]]
    assert (gap.mean, gap.lo, gap.hi) == pytest.approx(_t(np.subtract(w_g, w_f)), abs=1e-12)
    text = leaderboard_headline(lb)
    assert "**mono_uniform_tokens_r1**" in text and "Best free baseline: gate_fixed_best" in text


def test_one_seed_scaling_board_takes_the_cells_per_window_intervals():
    """With one seed: mono - gate = -(gate - mono) per window, the cell's paired s.e. kept."""
    g = _scaling_rows()
    g = g[g["seed"] == 0]
    extra = []
    for lam, dv, se in ((V[0], 0.6, 0.05), (V[1], 0.4, 0.04), (V[2], 0.5, 0.03)):
        for metric, v in (("delta_vertex", -dv), ("delta_vertex_se", se)):
            extra.append(
                {
                    **BASE,
                    "method": "gate-vs-mono",
                    "metric": metric,
                    "value": v,
                    "lam": lam,
                    "seed": 0,
                    "convention": "compute",
                    "r_target": 0.26,
                }
            )
    g = pd.concat([g, pd.DataFrame(extra)], ignore_index=True)
    lb = leaderboard(board.board_frame(g), names=board._names(g))
    c = lb.cells.set_index(["method", "mixture"])
    z = stats.norm.ppf(0.975)
    m = "mono_uniform_compute_r0.26"
    assert c.loc[(m, "code"), "delta"] == pytest.approx(0.6)
    assert (c.loc[(m, "code"), "lo"], c.loc[(m, "code"), "hi"]) == pytest.approx(
        (0.6 - z * 0.05, 0.6 + z * 0.05)
    )
    assert np.isnan(c.loc[(m, WORST), "lo"]) and np.isnan(c.loc[("const_gate", "code"), "lo"])


def test_ties_need_every_cell_within_the_tolerance():
    g = _scaling_rows()
    near = g["method"].eq("bayes_router") & g["lam"].eq(V[0]) & g["seed"].eq(1)
    g.loc[near, "value"] += 2 * TIE_TOL  # one cell apart: two rows
    lb = leaderboard(board.board_frame(g))
    assert lb.ties == {} and {"const_gate", "bayes_router"} <= set(lb.order)
    assert tie_text(lb) == ""


# ---- successor --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def successor():
    return {e.name: e for e in discover("synthetic")}["successor"].load()


LAMS = ["1,0", "0.5,0.5", "0,1", "0.2,0.8"]
#: exact KL per token at lam_A = 1, 0.5, 0, 0.2 per seed
SUCC = {
    "gate-kl": [(0.20, 0.05, 0.10, 0.09), (0.22, 0.06, 0.11, 0.10), (0.19, 0.05, 0.12, 0.10)],
    "gate-excess": [(0.21, 0.05, 0.10, 0.09), (0.23, 0.05, 0.12, 0.10), (0.21, 0.06, 0.11, 0.1)],
    "const-gate-0.5": [
        (0.25, 0.04, 0.15, 0.12),
        (0.26, 0.05, 0.14, 0.12),
        (0.24, 0.04, 0.16, 0.13),
    ],
    "const-gate-best": [
        (0.23, 0.05, 0.16, 0.13),
        (0.24, 0.05, 0.15, 0.12),
        (0.22, 0.05, 0.17, 0.14),
    ],
    "mono-d16": [(0.30, 0.08, 0.05, 0.06), (0.31, 0.07, 0.06, 0.06), (0.29, 0.08, 0.05, 0.06)],
    "exact-minimax-trained-experts": [(0.12, 0.03, 0.12, 0.1)] * 3,
    "exact-gate-perfect-experts": [(0.09, 0.0, 0.09, 0.05)] * 3,
    "expert-A": [(0.01, 0.5, 2.0, 1.6)] * 3,
}


def _succ_rows() -> pd.DataFrame:
    rows = []
    for m, reps in SUCC.items():
        for seed, vals in enumerate(reps):
            for lam, v in zip(LAMS, vals, strict=True):
                rows.append(
                    {
                        "case": "clean",
                        "method": m,
                        "metric": "kl_per_token",
                        "value": v,
                        "lam": lam,
                        "seed": seed,
                    }
                )
    rows += [
        {
            "case": "clean",
            "method": "oracle-d16",
            "metric": "kl_per_token",
            "value": 0.0,
            "lam": "0.5,0.5",
            "seed": s,
        }
        for s in range(3)
    ]
    return pd.DataFrame(rows)


def test_successor_board_grades_exact_kl_against_the_kl_gate(successor):
    frame, lb = successor._board(_succ_rows())
    assert lb.reference == "gate-kl" and lb.quantity == "exact KL per token"
    assert set(lb.order) == {
        "gate-kl",
        "gate-excess",
        "const_gate",
        "gate_fixed_best",
        "mono-d16",
        "exact-minimax-trained-experts",
    }
    worst = {m: [max(v[0], v[2]) for v in reps] for m, reps in SUCC.items()}
    names = {"const-gate-0.5": "const_gate", "const-gate-best": "gate_fixed_best"}
    worst = {names.get(m, m): v for m, v in worst.items()}
    assert lb.order == sorted(lb.order, key=lambda m: np.mean(worst[m]))
    assert lb.order[0] == "exact-minimax-trained-experts" and lb.rivals[0] == "gate-kl"
    c = lb.cells.set_index(["method", "mixture"])
    mean, lo, hi = _t(np.subtract(worst["mono-d16"], worst["gate-kl"]))
    assert c.loc[("mono-d16", WORST), ["delta", "lo", "hi"]].tolist() == pytest.approx(
        [mean, lo, hi], abs=1e-12
    )
    assert lb.mixtures == [WORST, "uniform", "A", "B"]
    text = leaderboard_headline(lb)
    assert text.startswith("Best on the worst mixture (worst vertex): **gate-kl**")
    assert "Exact reference exact-minimax-trained-experts" in text
    table = leaderboard_table(lb)
    assert list(table["rank"]) == ["-", 1, 2, 3, 4, 5]


def test_successor_headline_names_the_free_baseline_beside_the_gate(successor):
    _, lb = successor._board(_succ_rows())
    d, lo, hi = _t(np.subtract([0.23, 0.24, 0.22], [0.21, 0.23, 0.21]))
    text = free_baseline_text(lb, "gate-excess")
    assert f"gate_fixed_best - gate-excess = {d:+.4f} [{lo:+.4f}, {hi:+.4f}]" in text
    assert ("not shown to beat" in text) == (lo <= 0)
    line = successor._free_baseline_line(_succ_rows(), "gate-excess")
    assert line.startswith(" On the worst mixture (exact KL): Best free baseline: gate_fixed_best")


def test_a_free_baseline_that_beats_the_gate_is_said_to(successor):
    rows = _succ_rows()
    best = rows["method"].eq("const-gate-best")
    rows.loc[best, "value"] -= 0.05  # now below gate-excess on every seed
    _, lb = successor._board(rows)
    d, lo, hi = _t(np.subtract([0.18, 0.19, 0.17], [0.21, 0.23, 0.21]))
    assert hi < 0
    text = free_baseline_text(lb, "gate-excess")
    assert f"= {d:+.4f} [{lo:+.4f}, {hi:+.4f}]): the free baseline beats gate-excess" in text
