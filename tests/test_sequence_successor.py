"""Smoke test of the successor plug-in through the suite loader on a tiny config (seconds)."""

import numpy as np
import pytest
import torch

from modgen_bench.results import RunContext
from modgen_bench.suites import discover

TINY = dict(
    seeds=[0],
    cases=["contam50"],
    vocab=5,
    length=3,
    expert_d=4,
    gate_d=4,
    gate_d_ff=8,
    d_ff=8,
    retrain_sizes=[4],
    oracle_lams=[0.5],
    lm_steps=15,
    lm_batch=8,
    spd_steps=6,
    spd_per_domain=4,
    pool=16,
    log_every=2,
    signals=["kl", "excess"],
)


@pytest.fixture(scope="module")
def plugin():
    return {e.name: e for e in discover("synthetic")}["successor"].load()


@pytest.fixture(scope="module")
def rows(plugin, tmp_path_factory):
    old = torch.get_num_threads()
    ctx = RunContext("synthetic", dict(TINY), tmp_path_factory.mktemp("succ"), "cpu", 0)
    plugin.run(ctx)
    assert torch.get_num_threads() == old  # the plug-in restores the thread count
    return ctx.frame()


def test_rows_cover_every_model_and_lam(rows):
    curves = rows[rows["metric"].eq("kl_per_token")]
    assert set(curves["method"]) == {
        "expert-A",
        "expert-B",
        "const-gate-0.5",
        "gate-kl",
        "gate-excess",
        "mono-d4",
        "oracle-d4",
        "exact-gate-perfect-experts",
        "const-gate-best",
        "exact-minimax-trained-experts",
    }
    per_method = curves.groupby("method")["lam"].nunique()
    assert per_method.drop("oracle-d4").eq(11).all() and per_method["oracle-d4"] == 1
    assert curves[curves["method"].eq("oracle-d4")]["lam"].iloc[0] == "0.5,0.5"
    assert np.isfinite(rows["value"]).all()
    assert (rows[rows["metric"].str.startswith("kl")]["value"] > -1e-9).all()  # KL >= 0
    exact = rows["method"].isin(["exact-gate-perfect-experts", "exact-minimax-trained-experts"])
    assert (rows[~exact]["params"].dropna() > 0).all()


def test_one_normalisation_rule_for_every_model(rows):
    """Every model is graded renormalised on X0. Renormalising can only lower
    KL when Z <= 1 (KL(P || pi/Z) = KL(P || pi) + log Z), so kl_per_token - kl_raw_per_token =
    log Z_X0 / length for EVERY method, gates, constant gate and retrains alike."""
    wide = rows[rows["lam"].ne("")].pivot_table(
        index=["method", "lam"], columns="metric", values="value"
    )
    assert set(wide.index.get_level_values("method")) >= {"const-gate-0.5", "mono-d4", "gate-kl"}
    diff = wide["kl_per_token"] - wide["kl_raw_per_token"]
    np.testing.assert_allclose(diff, np.log(wide["Z_X0"]) / TINY["length"], atol=1e-9)
    z = wide["Z_X0"].groupby("method").first()
    assert z["mono-d4"] < 1.0  # an LM leaks mass off X0: renormalised too
    assert z["const-gate-0.5"] < 1.0


def test_claims_text_uses_paired_intervals(plugin, rows):
    text = plugin._claims_text(rows[rows["lam"].ne("")], "contam50")
    assert "95% t intervals" in text and "undecided at" in text
    assert "gate-kl vs const-gate-0.5" in text  # the constant gate is a comparator
    assert "Matching convention" in text


@pytest.mark.parametrize("case", ["clean", "contam50"])
def test_exact_reference_gate_is_the_minimax_gate(plugin, case):
    """Clean: disjoint domains, so V* = log 2 per sequence (log p). Contaminated: the exact core's
    value, and the curve's worst case is attained at a vertex (vertex property)."""
    from modgen_bench.data.synthetic import CONTAMINATION, SuccessorTask
    from modgen_bench.sequence.evaluate import mixture_kl

    task = SuccessorTask(vocab=5, length=3, contamination=CONTAMINATION[case])
    seqs, W = task.support()
    log_q = plugin._exact_gate_on_perfect_experts(W)
    assert abs(float(torch.logsumexp(log_q, 0))) < 1e-12  # a distribution on X0
    log_p = task.log_prob(seqs)
    worst = max(mixture_kl(log_q, W, log_p, [a, 1 - a]) for a in np.linspace(0, 1, 21))
    vertices = max(mixture_kl(log_q, W, log_p, lam) for lam in ([1.0, 0.0], [0.0, 1.0]))
    assert worst == pytest.approx(vertices, abs=1e-12)
    if case == "clean":
        assert worst == pytest.approx(np.log(2.0), abs=1e-10)
    else:
        assert 0 < worst < np.log(2.0)


def test_report_builds_tables_and_figures(plugin, rows, tmp_path):
    sections = plugin.report(rows, tmp_path)
    figs = [f[1] for s in sections for f in s.figures]  # (caption, path[, alt])
    assert len(figs) >= 3 and all(f.is_file() and f.stat().st_size > 0 for f in figs)
    assert any("gate-kl vs oracle-d4" in s.text for s in sections)


def test_unknown_config_key_is_an_error(plugin, tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        plugin.run(RunContext("synthetic", {**TINY, "lm_stpes": 3}, tmp_path, "cpu", 0))
    with pytest.raises(ValueError, match="cases"):
        plugin.run(RunContext("synthetic", {**TINY, "cases": ["dirty"]}, tmp_path, "cpu", 0))


def test_oracle_lams_must_lie_on_the_grid(plugin, tmp_path):
    with pytest.raises(ValueError, match="not on the test grid"):
        plugin.run(RunContext("synthetic", {**TINY, "oracle_lams": [0.25]}, tmp_path, "cpu", 0))


def test_exact_minimax_over_the_trained_experts_is_below_every_constant_gate(rows):
    """A constant gate renormalised on X0 (a single expert too: weights (1, 0)) is a constant
    gate over the renormalised experts, a member of G1: the exact minimax gate's worst-case KL
    is at most its, per seed."""
    kl = rows[rows["metric"].eq("kl_per_token")]
    worst = kl.groupby(["method", "seed"])["value"].max()
    exact = worst["exact-minimax-trained-experts"]
    assert (rows[rows["metric"].eq("exact_optimal")]["value"] == 1.0).all()
    for m in ("const-gate-0.5", "const-gate-best", "expert-A", "expert-B"):
        assert (exact <= worst[m] + 1e-9).all(), m
