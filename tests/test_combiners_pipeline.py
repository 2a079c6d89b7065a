"""Every registered combiner through the real-text replicate and report, on three tiny synthetic
corpora registered for the test (no Debian packages needed): rows, costs, skips, the leaderboard."""

import copy
import random

import numpy as np
import pandas as pd
import pytest

from modgen_bench.combiners import COMBINERS
from modgen_bench.data import corpora
from modgen_bench.data.corpora import Corpus
from modgen_bench.pipeline.report import report
from modgen_bench.replicate import load_config, run_replicate
from modgen_bench.reporting import Headline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["syn-a", "syn-b", "syn-c"]
ALPHABETS = ["abcdefgh ", "0123456789+-= ", "XYZ xyz.!?"]

TINY = {
    "corpora": NAMES,
    "block_size": 17,
    "seeds": [0],
    "resamples": [],
    "n_gate_train": 32,
    "n_eval": 8,
    "n_proposal": 16,
    "n_draws": 64,
    "n_restore": 64,
    "mixtures": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.2, 0.2]],
    "conflict_every": 3,
    "conflict_batch": 4,
    "checkpoint_every": 5,
    "expert": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 8,
        "d_ff": 16,
        "steps": 6,
        "batch_size": 8,
        "lr": 3e-3,
    },
    "mono": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 0,
        "d_ff": 0,
        "steps": 5,
        "batch_size": 4,
        "lr": 3e-3,
    },
    "gate": {"n_layer": 1, "n_head": 2, "d_model": 4, "d_ff": 8},
    "spd": {"steps": 4, "per_domain": 4, "lr": 3e-3, "log_every": 2},
    "router": {"steps": 4, "batch_size": 6, "lr": 3e-3},
    "combiners": {name: {} for name in sorted(COMBINERS)},
}


@pytest.fixture
def synthetic_corpora(tmp_path, monkeypatch):
    """Three fortune-style folders of 300 short records over different alphabets."""
    for name, alphabet in zip(NAMES, ALPHABETS, strict=True):
        rng = random.Random(name)
        folder = tmp_path / name
        folder.mkdir()
        recs = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(60, 120))) for _ in range(300)
        ]
        (folder / "records").write_text("\n%\n".join(recs))
        monkeypatch.setitem(
            corpora.CORPORA, name, Corpus(name, "none", str(folder), corpora._read_fortunes, name)
        )
    return tmp_path


def test_every_combiner_runs_in_the_replicate_and_reaches_the_leaderboard(synthetic_corpora):
    cfg = copy.deepcopy(TINY)
    rows, _ = run_replicate(cfg, seed=0, resample=0, out_dir=synthetic_corpora / "store")
    df = pd.DataFrame(rows)
    test = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    ran = set(COMBINERS) - {"merge_avg", "merge_task_arith"}
    for m in ran:
        v = test[test["method"] == m]
        assert v["lam"].nunique() == 5 and np.isfinite(v["value"]).all(), m
        cost = df[(df["case"] == "cost") & (df["method"] == m)].set_index("metric")["value"]
        assert set(cost.index) == {"params_ratio", "compute_ratio", "token_ratio"}, m
        assert (cost > 0).all(), m
        assert set(df[df["method"] == m]["match"]) == {"params"}
    skip = df[df["case"] == "skip"].set_index("method")
    assert set(skip.index) == {"merge_avg", "merge_task_arith"}
    assert skip["reason"].str.contains("do not share an initialisation").all()
    # sequence-level grading: Z's interval carried into the NLL for gate_erm
    erm = test[test["method"] == "gate_erm"]
    band = df[(df["case"] == "test") & (df["method"] == "gate_erm")].pivot_table(
        index="lam", columns="metric", values="value"
    )
    assert (band["nll_per_token_lo"] <= band["nll_per_token"] + 1e-12).all() and len(erm) == 5
    assert (band["nll_per_token"] <= band["nll_per_token_hi"] + 1e-12).all()
    # DoReMi compute counts three trainings, Group DRO one: ratio 3 between them
    c = df[(df["case"] == "cost") & (df["metric"] == "compute_ratio")].set_index("method")["value"]
    assert c["mono_doremi"] == pytest.approx(3 * c["mono_groupdro"])
    assert c["mono_groupdro"] == pytest.approx(c["mono_uniform"])
    paired = df[(df["case"] == "paired") & df["method"].str.endswith("-vs-gate_excess_logZ")]
    assert {f"{m}-vs-gate_excess_logZ" for m in ran} <= set(paired["method"])
    # the report's leaderboard lists every method that ran and names the skipped ones
    df["experiment"] = "tiny"
    secs = {
        s.title: s for s in report(df.assign(lam=df["lam"].fillna("")), synthetic_corpora / "fig")
    }
    lb = secs["Leaderboard"]
    table = lb.tables[0][1]
    assert ran <= set(table["method"]) and "mono_uniform" in set(table["method"])
    assert "monolith matched by params" in lb.tables[0][0]
    assert "Best on the worst mixture" in lb.text and "merge_avg (experts do not share" in lb.text
    # the same answer as a headline box, so the landing page (headline.json) shows it
    box = secs["leaderboard (params-matched)"]
    assert isinstance(box, Headline) and box.text.startswith("Best on the worst mixture")
    assert lb.text.startswith(box.text)


def test_an_unknown_combiner_is_a_config_error_listing_the_registered_ones():
    cfg = copy.deepcopy(TINY)
    cfg["combiners"] = {"mono_magic": {}}
    with pytest.raises(ValueError, match="unknown combiner 'mono_magic'.*gate_erm"):
        load_config(cfg)


def test_branched_experts_are_merged_not_skipped(synthetic_corpora):
    """The `branch` source carries the base's weights, so both merges run and are graded."""
    cfg = copy.deepcopy(TINY)
    cfg.update(
        experts_from="branch",
        finetune_steps=3,
        combiners={"merge_avg": {}, "merge_task_arith": {"alphas": [0.5, 1.0]}},
    )
    rows, _ = run_replicate(cfg, seed=0, resample=0, out_dir=synthetic_corpora / "store")
    df = pd.DataFrame(rows)
    assert not (df["case"] == "skip").any()
    test = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    for m in ("merge_avg", "merge_task_arith"):
        v = test[test["method"] == m]
        assert v["lam"].nunique() == 5 and np.isfinite(v["value"]).all(), m
