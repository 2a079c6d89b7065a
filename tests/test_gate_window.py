"""The gate_window experiment (synthetic/gate_window.py): the ceiling on any gate's advantage
over the constant gate, the exact references it is compared with, and a tiny end-to-end run."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from modgen_bench.data.synthetic import SuccessorTask
from modgen_bench.divergences import kl
from modgen_bench.results import RunContext
from modgen_bench.suites import discover

TINY = dict(
    seeds=[0],
    lengths=[3, 4],
    alphas=[0.0, 0.5],
    vocab=5,
    expert_d=4,
    gate_d=4,
    gate_d_ff=8,
    d_ff=8,
    lm_steps=15,
    lm_batch=8,
    table_steps=40,
    spd_steps=4,
    spd_per_domain=4,
    pool=16,
    fixed_grid=21,
    gates=["table", "sequence"],
)


@pytest.fixture(scope="module")
def gw():
    return {e.name: e for e in discover("synthetic")}["gate_window"].load()


def _world(seed, vocab=4, T=3, alpha=0.3, leak=0.2):
    """Successor domains on X0 and two random imperfect experts that leak mass off X0."""
    rng = np.random.default_rng(seed)
    _, W = SuccessorTask(vocab, T, alpha).support()
    P = (W / W.sum(0)).T.numpy()  # (2, 2V)
    E = rng.dirichlet(np.full(P.shape[1], 0.7), size=2) * (1 - leak)
    return P, E


def _renormalised_kl(P_lam, pi):
    q = pi / pi.sum()
    return float(kl(P_lam, q))


@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_no_gate_gains_more_than_log_p_plus_the_normalisers_over_the_constant_gate(seed, a):
    """pi_g <= E_0 + E_1 = 2 pi_u pointwise, so for every test mixture and every gate:
    KL(P_lam || pi_u / Z_u) - KL(P_lam || pi_g / Z_g) <= log 2 + log Z_u - log Z_g."""
    P, E = _world(seed)
    rng = np.random.default_rng(seed + 1)
    lam = np.array([a, 1 - a])
    P_lam = lam @ P
    pi_u = E.mean(axis=0)
    for g in rng.dirichlet(np.full(2, 0.3), size=(20, P.shape[1])):  # (20, 2V, 2)
        pi_g = np.einsum("nk,kn->n", g, E)
        gain = _renormalised_kl(P_lam, pi_u) - _renormalised_kl(P_lam, pi_g)
        assert gain <= math.log(2) + math.log(pi_u.sum()) - math.log(pi_g.sum()) + 1e-12


@given(st.integers(0, 10_000))
def test_g1_gates_stay_under_the_ceiling_per_transition(gw, seed):
    """The exact minimax gate with Z = 1 (on X0 and the lumped off-X0 mass) beats the constant
    gate by at most log 2 per sequence, i.e. log 2 / (T - 1) per transition, on every mixture."""
    T = 3
    P, E = _world(seed, T=T)
    sol = gw.g1_minimax(P, E, "union")
    pi_g = sol.model[:-1]  # raw, on X0
    const = gw.worst_kl(P, np.log(E.mean(axis=0) / E.mean(axis=0).sum()))
    assert (const - sol.value) / (T - 1) <= gw.ceiling(2, T) + 1e-9
    for a in np.linspace(0, 1, 11):
        P_lam = np.array([a, 1 - a]) @ P
        gain = _renormalised_kl(P_lam, E.mean(axis=0)) - float(kl(P_lam, pi_g))
        assert gain <= math.log(2) + 1e-9


def test_ceiling_value(gw):
    assert gw.ceiling(2, 8) == pytest.approx(math.log(2) / 7)
    assert gw.ceiling(3, 2) == pytest.approx(math.log(3))


def test_worst_kl_is_the_largest_domain_kl(gw):
    P, E = _world(3)
    q = E[0] / E[0].sum()
    assert gw.worst_kl(P, np.log(q)) == pytest.approx(float(kl(P, q).max()), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5])
def test_references_agree_with_perfect_experts_in_closed_form(gw, alpha):
    """E_k = P_k: domain 1 = alpha A + (1 - alpha) B, so any model puts a on the A-chains (spread
    like P_A) and V* = min_{a in [alpha, 1]} max(-log a, alpha log(alpha / a) + (1 - alpha)
    log((1 - alpha) / (1 - a))). A gate cannot beat the best fixed weight here: every exact
    reference and the fixed-weight search reach it."""
    _, W = SuccessorTask(4, 3, alpha).support()
    P = (W / W.sum(0)).T.numpy()

    def d1(a):
        return (alpha * np.log(alpha / a) if alpha else 0.0) + (1 - alpha) * np.log(
            (1 - alpha) / (1 - a)
        )

    # -log a falls and d1 rises on [alpha, 1): the max of the two is least where they cross
    a_star = brentq(lambda a: -np.log(a) - d1(a), max(alpha, 1e-12), 1 - 1e-12, xtol=1e-15)
    closed = -np.log(a_star)
    assert gw.g1_minimax(P, P).value == pytest.approx(closed, abs=1e-7)
    with np.errstate(divide="ignore"):
        log_E = np.log(P.T)  # exact zeros off each domain
    _, fixed = gw.best_fixed_weight(P, log_E, grid=201)
    assert fixed == pytest.approx(closed, abs=1e-7)
    value, gap = gw.renormalised_minimax(P, P.min(axis=0), P.max(axis=0))
    assert value == pytest.approx(closed, abs=1e-5) and gap < 1e-5


@given(st.integers(0, 10_000))
def test_the_renormalised_minimax_is_below_every_constant_gate(gw, seed):
    P, E = _world(seed)
    value, gap = gw.renormalised_minimax(P, E.min(axis=0), E.max(axis=0))
    assert gap < 1e-5
    for w in np.linspace(0, 1, 11):
        pi = w * E[0] + (1 - w) * E[1]
        assert value <= gw.worst_kl(P, np.log(pi / pi.sum())) + 1e-6
    _, fixed = gw.best_fixed_weight(P, np.log(E.T))
    assert value <= fixed + 1e-6
    union = gw.g1_minimax(P, E, "union")
    q = union.model[:-1]
    assert value <= gw.worst_kl(P, np.log(q / q.sum())) + 1e-6


def test_config_rejects_bad_values(gw):
    with pytest.raises(ValueError, match="signal"):
        gw.GateWindowConfig.from_dict({"signal": "nope"})
    with pytest.raises(ValueError, match="gates"):
        gw.GateWindowConfig.from_dict({"gates": ["mlp"]})
    with pytest.raises(ValueError, match="length"):
        gw.GateWindowConfig.from_dict({"lengths": [1]})


@pytest.fixture(scope="module")
def rows(gw, tmp_path_factory):
    ctx = RunContext("synthetic", dict(TINY), tmp_path_factory.mktemp("gw"), "cpu", 0)
    gw.run(ctx)
    return ctx.frame()


def test_tiny_run_rows_respect_the_ceiling_and_the_lower_bound(rows):
    assert np.isfinite(rows["value"]).all()
    worst = rows[rows["metric"].eq("worst_kl_per_transition")]
    cells = worst.groupby("case")
    assert len(cells) == 4
    for case, g in cells:
        v = g.set_index("method")["value"]
        assert {
            "const-gate-0.5",
            "fixed-best",
            "spd-table",
            "spd-sequence",
            "exact-union",
            "exact-renormalised",
            "perfect-experts",
        } <= set(v.index)
        for m in ("const-gate-0.5", "fixed-best", "spd-table", "spd-sequence"):
            # nothing renormalised beats the renormalised minimax
            assert v[m] >= v["exact-renormalised"] - 1e-6, (case, m)
        assert v["fixed-best"] <= v["const-gate-0.5"] + 1e-9
    adv = rows[rows["metric"].eq("advantage_per_transition")]
    ceil = rows[rows["metric"].eq("ceiling_per_transition")].set_index("case")["value"]
    for _, r in adv[adv["method"].isin(["exact-union", "exact-G1"])].iterrows():
        assert r["value"] <= ceil[r["case"]] + 1e-9
    bound = rows[rows["metric"].eq("advantage_bound_per_transition")].set_index(["case", "method"])
    for _, r in adv[adv["method"].isin(["fixed-best", "spd-table", "spd-sequence"])].iterrows():
        assert r["value"] <= bound.loc[(r["case"], r["method"]), "value"] + 1e-9


def test_report_draws_the_figure_with_the_ceiling(gw, rows, tmp_path):
    sections = gw.report(rows, tmp_path)
    assert (tmp_path / "gate_window_T_alpha.png").is_file()
    text = sections[0].text
    assert "ceiling log 2 / (T - 1)" in text and "G1 references above the ceiling: 0 of" in text
