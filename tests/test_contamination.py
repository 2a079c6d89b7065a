"""Controlled contamination of a real pair (modgen_bench/data/contamination.py) and the
real_world/contamination suite: the derived corpus's exact rate, seeding, disjointness and
recorded sha256 on small registered corpora (property tests), the report's worst-case excess and
ceiling against hand-computed rows, and the plug-in end to end on a tiny preset (seconds)."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modgen_bench.data import contamination as C
from modgen_bench.data.corpora import (
    CORPORA,
    DOC_SEP,
    Corpus,
    load_slices,
    split_documents,
    split_of,
)
from modgen_bench.data.files import register
from modgen_bench.errors import UserError
from modgen_bench.replicate import load_config
from modgen_bench.results import RunContext
from modgen_bench.suites import discover, load_plugin

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "real_world" / "contamination"
plugin = load_plugin(SUITE / "contamination.py")

#: A: 60 documents of a's (6 to 65 bytes, 2130 in all); B: 400 of b's and digits (about 40 bytes)
A_DOCS = [b"a" * (5 + i) + bytes([65 + i % 26]) for i in range(60)]
B_DOCS = [b"b%db" % i * (4 + i % 9) for i in range(400)]


@pytest.fixture(scope="module", autouse=True)
def fake_pair():
    """Two small corpora registered as "fake-a" and "fake-b" (caches cleared around them)."""
    src = str(Path(__file__))
    saved = {n: CORPORA.get(n) for n in ("fake-a", "fake-b")}
    CORPORA["fake-a"] = Corpus("fake-a", "pkg-a", src, lambda s: list(A_DOCS), "fake A")
    CORPORA["fake-b"] = Corpus("fake-b", "pkg-b", src, lambda s: list(B_DOCS), "fake B")
    C._distinct.cache_clear()
    C.contaminate.cache_clear()
    yield
    for n, c in saved.items():
        if c is None:
            CORPORA.pop(n, None)
        else:
            CORPORA[n] = c
    C._distinct.cache_clear()
    C.contaminate.cache_clear()


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_rate_is_exact_lengths_kept_and_text_from_the_donor_pool_only(alpha, seed):
    docs, comp = C.contaminate("fake-a", "fake-b", alpha, seed)
    k = round(alpha * len(A_DOCS))
    assert comp.n_docs == len(A_DOCS) and comp.n_replaced == k
    assert comp.rate == k / len(A_DOCS)
    assert [len(d) for d in docs] == [len(d) for d in A_DOCS]
    replaced = [i for i, d in enumerate(docs) if d != A_DOCS[i]]
    assert len(replaced) == k
    pool, rest = C.donor_split("fake-b")
    text = DOC_SEP.join(pool)
    for i in replaced:  # B's pool text only: no a's, a piece of the pool
        assert b"a" not in docs[i] and docs[i].split(DOC_SEP)[0] in text
    assert not set(docs) & set(rest)  # no document in both domains
    share = sum(len(A_DOCS[i]) for i in replaced) / sum(map(len, A_DOCS))
    assert comp.byte_share == pytest.approx(share, abs=1e-15)
    assert comp.sha256 == hashlib.sha256(DOC_SEP.join(docs)).hexdigest()


def test_alpha_zero_is_the_base_and_disjoint_from_the_rest():
    docs, comp = C.contaminate("fake-a", "fake-b", 0.0, 3)
    assert list(docs) == A_DOCS and comp.n_replaced == 0 and comp.byte_share == 0.0
    pool, rest = C.donor_split("fake-b")
    assert not set(docs) & (set(pool) | set(rest))
    assert set(pool).isdisjoint(rest) and set(pool) | set(rest) == set(B_DOCS)
    assert 0 < len(pool) < len(B_DOCS) / 2  # about DONOR_SHARE of 400


def test_seeded_same_seed_same_corpus_other_seed_other_documents():
    a, _ = C.contaminate("fake-a", "fake-b", 0.3, 0)
    b, _ = C.contaminate.__wrapped__("fake-a", "fake-b", 0.3, 0)  # recomputed, not cached
    c, _ = C.contaminate("fake-a", "fake-b", 0.3, 1)
    assert a == b and a != c


def test_registered_tables_keep_their_sources_splits_and_record_sha256():
    name = register(
        {"name": "fake-a+b", "contaminate": "fake-a", "donor": "fake-b", "alpha": 0.5, "seed": 0}
    )
    rest = register({"name": "fake-b-rest", "rest_of": "fake-b"})
    assert isinstance(CORPORA[name], C.DerivedCorpus) and CORPORA[name].present()
    parts = split_documents(name)
    kept = set(A_DOCS) & {d for docs in parts.values() for d in docs}
    assert len(kept) == len(A_DOCS) - 30
    for split, docs in parts.items():  # A's documents stay where A puts them
        assert all(split_of(d, "fake-a") == split for d in docs if d in kept)
    for split, docs in split_documents(rest).items():
        assert all(split_of(d, "fake-b") == split for d in docs)
    for split, sl in load_slices(name).items():
        assert sl.sha256 == hashlib.sha256(DOC_SEP.join(parts[split])).hexdigest()
    assert CORPORA[name].composition().n_replaced == 30 and CORPORA[rest].composition() is None


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"contaminate": "fake-a", "donor": "fake-b", "alpha": 1.5}, "alpha must be"),
        ({"contaminate": "fake-a", "donor": "fake-a", "alpha": 0.1}, "donor must differ"),
        ({"contaminate": "nope", "donor": "fake-b", "alpha": 0.1}, "not a registered corpus"),
        ({"contaminate": "fake-a", "donor": "fake-b", "alpha": 0.1, "rate": 2}, "unknown keys"),
        ({"contaminate": "fake-a", "rest_of": "fake-b"}, "exactly one of"),
        ({"rest_of": "fake-b", "seed": "x"}, "unknown keys"),
    ],
)
def test_bad_tables_are_one_clear_user_error(spec, match):
    with pytest.raises(UserError, match=match):
        register({"name": "bad", **spec})


def test_a_donor_pool_too_small_is_a_user_error():
    """Replacing all of fake-b's 400 documents by text from fake-a's pool (about 12 short
    documents) cannot be done."""
    with pytest.raises(UserError, match="donor pool holds"):
        C.contaminate("fake-b", "fake-a", 1.0, 0)


# ---- the report on hand-made rows -----------------------------------------------------------


def _rows(T, alpha, seed, nll, paired_se=0.001):
    """Rows of one cell as the replicate writes them: nll {method: (vertex A, vertex B)}."""
    a = f"fake-a+fake-b@{alpha:g}-s0"
    out = [dict(case="composition", method=a, metric="byte_share", value=alpha)]
    for m, (va, vb) in nll.items():
        out += [
            dict(case="test", method=m, metric="nll_per_token", lam="1,0", value=va),
            dict(case="test", method=m, metric="nll_per_token", lam="0,1", value=vb),
        ]
    g = np.array(nll["gate_excess_logZ"])
    for method, rival, sign in [
        ("gate_excess_logZ-vs-const_gate", "const_gate", 1),
        ("gate_fixed_best-vs-gate_excess_logZ", "gate_fixed_best", -1),
    ]:
        d = sign * (g - np.array(nll[rival]))
        for lam, v in [("1,0", d[0]), ("0,1", d[1]), ("0.5,0.5", d.mean())]:
            out += [
                dict(case="paired", method=method, metric="delta", lam=lam, value=v),
                dict(
                    case="paired", method=method, metric="delta_window_se", lam=lam, value=paired_se
                ),
            ]
    out += [
        dict(case="weights", method="gate_fixed_best", metric="w_a", value=0.25),
        dict(case="weights", method="gate_fixed_best", metric="w_b", value=0.75),
    ]
    return [{"lam": "", **r, "T": T, "alpha": alpha, "seed": seed} for r in out]


def _nll(alpha, seed, T):
    a = f"expert_fake-a+fake-b@{alpha:g}-s0"
    return {
        a: (2.0, 3.0),
        "expert_fake-b-rest": (3.1, 2.5),
        "const_gate": (2.0 + math.log(2) / (T - 1) * 0.8, 2.5 + 0.01),
        "gate_fixed_best": (2.05, 2.56),
        "gate_excess_logZ": (2.02 + 0.001 * seed, 2.53 + 0.002 * seed),
    }


@pytest.fixture(scope="module")
def hand_rows():
    return pd.DataFrame(
        [
            r
            for T in (5, 9)
            for alpha in (0.0, 0.5)
            for seed in (0, 1)
            for r in _rows(T, alpha, seed, _nll(alpha, seed, T))
        ]
    )


def test_worst_excess_and_cell_table_match_a_hand_count(hand_rows):
    table = plugin.cell_table(hand_rows)
    assert len(table) == 2 * 2 * 2
    for r in table.itertuples():
        gw = [max(0.02 + 0.001 * s, 0.03 + 0.002 * s) for s in (0, 1)]  # vertex B is worst
        const = max(math.log(2) / (r.T - 1) * 0.8, 0.01)
        rival = const if r.rival == "constant gate" else max(0.05, 0.06)
        assert r.mean == pytest.approx(np.mean(gw) - rival, abs=1e-12)
        assert r.W_rival == pytest.approx(rival, abs=1e-12)
        assert r.ceiling == pytest.approx(math.log(2) / (r.T - 1), abs=1e-15)
        assert r.lo < r.mean < r.hi and r.n_seeds == 2
        if r.rival == "best fixed gate":
            assert r.fixed_bound == pytest.approx(math.log(4) / (r.T - 1))
        else:
            assert math.isnan(r.fixed_bound)


def test_the_figures_ceiling_is_log_p_over_T_minus_1(hand_rows):
    fig = plugin.draw(plugin.cell_table(hand_rows))
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("ceiling")]
    assert len(line) == 1
    x, y = line[0].get_data()
    assert x.min() == 5 and x.max() == 9
    np.testing.assert_allclose(y, -np.log(2) / (x - 1), rtol=1e-13)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_config_errors_name_the_key():
    ok = {"replicate": {}, "lengths": [8], "alphas": [0.0], "seeds": [0]}
    plugin.ContaminationConfig.from_dict(ok)
    for bad, match in [
        ({"lengths": [2]}, "integer >= 3"),
        ({"alphas": [1.2]}, "alpha"),
        ({"replicate": {"block_size": 9}}, "must not set"),
        ({"expert_tokens": -1}, "expert_tokens"),
        ({"alpha": [0]}, "unknown"),
    ]:
        with pytest.raises(UserError, match=match):
            plugin.ContaminationConfig.from_dict({**ok, **bad})


def test_expert_tokens_fix_the_tokens_per_step_at_every_T():
    cfg = plugin.ContaminationConfig.from_dict(
        {"replicate": {"expert": {"batch_size": 3}}, "expert_tokens": 64}
    )
    for T in (8, 16, 65):
        assert cfg.cell_config(T, 0.1, 0)["expert"]["batch_size"] == math.ceil(64 / (T - 1))
        assert cfg.cell_config(T, 0.1, 0)["combiners"]["gate_fixed_best"] == {"signal": "excess"}


# ---- the plug-in end to end on the real pair ------------------------------------------------

TINY = dict(
    base="scripture",
    donor="reference",
    alphas=[0.0, 0.5],
    lengths=[5, 9],
    seeds=[0, 1],
    replicate=dict(
        signals=["excess"],
        n_gate_train=16,
        n_eval=8,
        n_proposal=0,
        n_draws=32,
        n_restore=64,
        mixtures=[[1, 0], [0, 1], [0.5, 0.5]],
        conflict_every=100,
        conflict_batch=4,
        expert=dict(n_layer=1, n_head=2, d_model=8, d_ff=16, steps=3, batch_size=4, lr=3e-3),
        mono=dict(n_layer=1, n_head=2, d_model=0, d_ff=0, steps=2, batch_size=2, lr=3e-3),
        gate=dict(n_layer=1, n_head=2, d_model=4, d_ff=8),
        spd=dict(steps=4, per_domain=4, lr=1e-2, log_every=2),
        router=dict(steps=2, batch_size=4, lr=3e-3),
    ),
)


@pytest.fixture(scope="module")
def run_ctx(tmp_path_factory):
    ctx = RunContext(
        "real_world/contamination", dict(TINY), tmp_path_factory.mktemp("contam"), "cpu", 0
    )
    plugin.run(ctx)
    return ctx


@pytest.mark.corpora("scripture", "reference")
def test_plugin_end_to_end_rows_provenance_and_report(run_ctx, tmp_path):
    df = run_ctx.frame()
    cells = df[df["case"].eq("test")].groupby(["T", "alpha", "seed"]).size()
    assert len(cells) == 2 * 2 * 2
    rate = df[df["case"].eq("composition") & df["metric"].eq("rate")]
    n = len(dict.fromkeys(CORPORA["scripture"].documents()))
    assert set(rate[rate["alpha"].eq(0.5)]["value"]) == {round(0.5 * n) / n}
    assert set(rate[rate["alpha"].eq(0.0)]["value"]) == {0.0}
    prov = run_ctx.info["corpora"]
    a = "scripture+reference@0.5-s0"
    assert (
        prov[a]["composition"]["sha256"]
        == C.contaminate("scripture", "reference", 0.5, 0)[1].sha256
    )
    assert len(prov[a]["resample0"]["test"]["sha256"]) == 64
    assert prov["reference-rest"]["resample0"]["train"]["n_docs"] > 0
    W = plugin.worst_excess(df)  # the constant gate's excess <= log p / (T - 1)
    const = W[W["method"].eq("const_gate")]
    assert (const["W"] <= np.log(2) / (const["T"] - 1) + 1e-6).all()
    headline, section = plugin.report(df, tmp_path)
    assert (tmp_path / "contamination_T_alpha.png").is_file()
    table = section.tables[0][1]
    assert len(table) == 2 * 2 * 2
    assert [float(c) for c in table["ceiling"]] == pytest.approx(
        [math.log(2) / (T - 1) for T in table["T"]], abs=1e-4
    )
    assert "not computable on real text" in section.text
    # the headline counts the cells per free baseline, every cell in exactly one class
    for rival in ("constant gate", "best fixed gate"):
        t = table[table["rival"].eq(rival)]
        better = int((t["hi"].astype(float) < 0).sum())
        line = next(x for x in headline.text.splitlines() if f"**{rival}**" in x)
        assert f"better in {better}," in line and line.endswith(f"of {len(t)} cells")


def test_the_suite_folder_is_discovered_and_its_presets_are_valid():
    exp = {e.name: e for e in discover(str(SUITE))}["contamination"]
    assert set(exp.presets) == {"quick", "full", "smoke"}
    for preset in exp.presets.values():
        cfg = plugin.ContaminationConfig.from_dict(preset)
        for T in cfg.lengths:
            load_config(cfg.cell_config(T, cfg.alphas[-1], cfg.seeds[0]))


def test_the_paragraph_counts_cells_and_flags_a_gain_beyond_the_ceiling():
    c = math.log(2) / 7
    table = pd.DataFrame(
        [
            dict(
                T=8,
                alpha=0.0,
                rival="constant gate",
                mean=-0.02,
                lo=-0.03,
                hi=-0.01,
                ceiling=c,
                W_rival=0.05,
                uniform_mean=0.001,
            ),
            dict(
                T=8,
                alpha=0.5,
                rival="constant gate",
                mean=-0.2,
                lo=-0.25,
                hi=-0.15,
                ceiling=c,
                W_rival=0.3,
                uniform_mean=-0.002,
            ),
            dict(
                T=128,
                alpha=0.0,
                rival="constant gate",
                mean=0.001,
                lo=-0.001,
                hi=0.003,
                ceiling=math.log(2) / 127,
                W_rival=0.0,
                uniform_mean=0.0,
            ),
        ]
    )
    text = plugin._finding(table)
    assert "better than the constant gate (interval below 0) in 2 of 3 cells" in text
    assert "1 cell(s) gain more than the ceiling" in text and "T = 8, alpha = 0.5" in text
    assert "From T = 128 on the ceiling is below 0.02" in text
