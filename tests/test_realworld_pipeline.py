"""The real-world plug-in (real_world/modular_text.py) end to end on a tiny config, on real corpora.

Covers: the runner contract (results.csv, run.json with corpus sha256s, report.md, index.html),
the matched parameter count, and kill-then-resume giving the uninterrupted run's numbers.
"""

import copy
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modgen_bench.results import RunContext
from modgen_bench.runner import run_suite

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "real_world" / "modular_text.py"

TINY = {
    "corpora": ["scripture", "fortunes-es", "fortunes-it"],
    "block_size": 17,
    "seeds": [0],
    "resamples": [1],
    "n_gate_train": 32,
    "n_eval": 8,
    "n_proposal": 16,
    "n_draws": 48,
    "n_restore": 64,
    "mixtures": [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1 / 3, 1 / 3, 1 / 3],
        [0.6, 0.2, 0.2],
        [0.8, 0.1, 0.1],
        [0, 0.5, 0.5],
    ],
    "oracle": [4],
    "conflict_every": 2,
    "conflict_batch": 4,
    "checkpoint_every": 3,
    "expert": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 8,
        "d_ff": 16,
        "steps": 8,
        "batch_size": 8,
        "lr": 3e-3,
    },
    "mono": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 0,
        "d_ff": 0,
        "steps": 6,
        "batch_size": 4,
        "lr": 3e-3,
    },
    "gate": {"n_layer": 1, "n_head": 2, "d_model": 4, "d_ff": 8},
    "spd": {"steps": 4, "per_domain": 4, "lr": 3e-3, "log_every": 2},
    "router": {"steps": 4, "batch_size": 4, "lr": 3e-3},
}


def _plugin():
    spec = importlib.util.spec_from_file_location("modular_text_under_test", PLUGIN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(out_dir, config=TINY):
    ctx = RunContext("real_world", copy.deepcopy(config), Path(out_dir), "cpu", 0)
    _plugin().run(ctx)
    return ctx


def _toml_value(v) -> str:
    """A TOML value: JSON for scalars and lists, an inline table for a dict."""
    if not isinstance(v, dict):
        return json.dumps(v)
    return "{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + " }"


@pytest.mark.corpora(*TINY["corpora"])
def test_tiny_config_runs_end_to_end_through_the_runner(tmp_path):
    suite = tmp_path / "real_world"
    suite.mkdir()
    shutil.copy(PLUGIN, suite / PLUGIN.name)
    toml = '[experiment]\nmodule = "modular_text"\n[preset.quick]\n' + "\n".join(
        f"{k} = {_toml_value(v)}" for k, v in TINY.items()
    )
    (suite / "tiny.toml").write_text(toml)
    assert tomllib.loads(toml)["preset"]["quick"]["expert"]["d_model"] == 8
    root = run_suite(
        str(suite), preset="quick", device="cpu", out=str(tmp_path / "out"), log=lambda *_: None
    )
    run_dir = next(root.glob("tiny-*"))
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype={"lam": str})
    info = json.loads((run_dir / "run.json").read_text())
    # corpus provenance: a sha256 per corpus, resample and split
    for name in TINY["corpora"]:
        for r in ("resample0", "resample1"):
            assert all(
                len(info["corpora"][name][r][s]["sha256"]) == 64 for s in ("train", "val", "test")
            )
    test = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    for m in [
        "gate_excess",
        "gate_nll",
        "gate_excess_logZ",
        "mono_uniform",
        "mono_lamstar",
        "router",
    ]:
        assert test[test["method"] == m]["lam"].nunique() == 7, m
    assert set(test[test["method"].str.startswith("oracle_")]["lam"]) == {"0.6,0.2,0.2"}
    v = test["value"].astype(float)
    assert np.all(np.isfinite(v)) and np.all(v > 0) and np.all(v < 2 * math.log(257))
    bpb = (
        df[(df["case"] == "test") & (df["metric"] == "bits_per_byte")]["value"].astype(float).values
    )
    np.testing.assert_allclose(bpb, v.values / math.log(2))
    par = df[df["metric"] == "n_params"].groupby("method")["value"].first()
    assert abs(par["mono"] - par["experts_plus_gate"]) / par["experts_plus_gate"] < 0.1
    assert {"gate_excess", "gate_nll", "mono_uniform"} <= set(
        df[df["case"] == "conflict"]["method"]
    )
    acc = df[df["metric"] == "rejection_acceptance"]["value"].astype(float)
    assert np.all((acc > 0) & (acc <= 1))
    from modgen_bench.reporting import build_report

    build_report(root, trusted_dirs=[suite])  # the plug-in's own report (a trusted folder)
    report = (root / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report and "Router minus the excess gate" in report
    assert f"Vertices are the domains in order {TINY['corpora']}" in report  # lam order, not sorted
    assert "routing_proper" in report and "domain_prior" in report and "expert_deficit" in report
    # one convention: every table caption names the matching convention; baselines in the tables
    captions = [
        line for line in report.splitlines() if line.startswith("**") and line.endswith("**")
    ]
    assert captions and all("[monolith matched by params, r " in c for c in captions), captions
    assert "const_gate" in report and "bayes_router" in report and "95% t-interval" in report
    assert (
        "gate vs monolith (params-matched)" in report and "tiny: tiny:" not in report
    )  # headline box
    for stem in ("tiny_mixtures", "tiny_conflict"):
        pngs = list(root.rglob(f"{stem}.png"))
        assert (
            pngs
            and pngs[0].with_suffix(".svg").is_file()
            and pngs[0].with_suffix(".alt.txt").is_file()
        )
    for m in ["const_gate", "bayes_router"]:
        assert test[test["method"] == m]["lam"].nunique() == 7, m
    paired = df[(df["case"] == "paired") & (df["metric"] == "delta_window_se")]
    assert paired["value"].astype(float).gt(0).all() and paired["lam"].nunique() == 7
    assert set(df[df["case"] == "routing_split"]["metric"]) == {
        "routing_proper",
        "domain_prior",
        "expert_deficit",
    }
    # Z's interval carried into the gate's NLL: lo <= NLL <= hi on every mixture
    for m in ("gate_excess_logZ", "gate_nll_logZ"):
        w = (
            df[(df["case"] == "test") & (df["method"] == m)]
            .pivot_table(
                index=["seed", "resample", "lam"], columns="metric", values="value", aggfunc="first"
            )
            .astype(float)
        )
        assert len(w) and (w["nll_per_token_lo"] <= w["nll_per_token"] + 1e-12).all()
        assert (w["nll_per_token"] <= w["nll_per_token_hi"] + 1e-12).all()
    assert set(df["match"]) == {"params"}
    assert (root / "index.html").read_text().count("data:image/png;base64") >= 2
    # the landing page carries the leaderboard's answer beside the gate-vs-monolith box
    from modgen_bench.reporting import build_index

    landing = build_index(tmp_path / "out")[1].read_text()
    assert "tiny: leaderboard (params-matched)" in landing
    assert "Best on the worst mixture" in landing


def test_closed_form_parameter_count_is_count_params():
    from modgen_bench.models import LMConfig, TransformerLM, count_params
    from modgen_bench.pipeline.retrain import lm_params

    for V, T, L, C, F in [(257, 33, 1, 32, 128), (257, 257, 3, 96, 384), (11, 9, 2, 8, 5)]:
        assert lm_params(V, T, L, C, F) == count_params(TransformerLM(LMConfig(V, T, L, 2, C, F)))


def test_matched_d_model_matches_the_parameter_count():
    from modgen_bench.models import count_params
    from modgen_bench.pipeline import LMTrain, make_lm, matched_d_model

    lm = LMTrain(n_layer=3, n_head=4, d_model=0, d_ff=0, steps=1, batch_size=1, lr=1e-3)
    for target in (200_000, 5_400_000):
        d = matched_d_model(lm, 257, target, vocab_size=257)
        n = count_params(make_lm(lm, d, 257, 0))
        assert abs(n - target) / target < 0.05 and d % 8 == 0


@pytest.mark.parametrize("suite", ["real_world", "real_world/cpu_medium"])
def test_every_shipped_preset_is_a_valid_config(suite):
    """A typo in a preset fails here, not an hour into a run."""
    from modgen_bench.suites import discover

    mod = _plugin()
    for exp in discover(str(ROOT / suite)):
        for name, preset in exp.presets.items():
            cfg = mod.Config.from_dict(preset)
            assert len(cfg.mixtures) >= 7, (exp.path, name)


def test_proposal_pool_below_spds_draws_is_an_error_naming_both():
    bad = copy.deepcopy(TINY)
    bad["n_proposal"] = 15  # spd: 4 steps x 4 per domain = 16
    with pytest.raises(ValueError, match=r"n_proposal = 15 .* spd.steps x spd.per_domain = 16"):
        _plugin().Config.from_dict(bad)
    auto = copy.deepcopy(TINY)
    auto["n_proposal"] = 0
    assert _plugin().Config.from_dict(auto).n_proposal == 16


def test_match_convention_is_checked_and_plans_the_monolith():
    """match = params (the default, the suite's convention so far): total parameters of the
    monolith ~ experts + gate, the preset's steps; compute: training FLOPs = the experts'
    combined; tokens: the experts' combined tokens; r is the non-embedding ratio."""
    from modgen_bench.matching import nonembedding_params
    from modgen_bench.models import LMConfig
    from modgen_bench.replicate import monolith_plan

    bad = copy.deepcopy(TINY)
    bad["match"] = "flops"
    with pytest.raises(
        ValueError, match="match = 'flops' is not a matching convention; choose one of params"
    ):
        _plugin().Config.from_dict(bad)
    cfg = _plugin().Config.from_dict(copy.deepcopy(TINY))
    assert cfg.match == "params"
    spec, d, ratios = monolith_plan(cfg, 17, 3, n_gate=500, vocab_size=257)
    assert spec == cfg.mono and abs(ratios["params_ratio"] - 1) < 0.15
    e = LMConfig(257, 17, 1, 2, 8, 16)
    m = LMConfig(257, 17, 1, 2, d, 4 * d)
    assert ratios["r_nonembedding"] == pytest.approx(
        nonembedding_params(m) / (3 * nonembedding_params(e))
    )
    assert ratios["token_ratio"] == pytest.approx(6 * 4 / (8 * 8))
    for conv, key in (("compute", "compute_ratio"), ("tokens", "token_ratio")):
        c = copy.deepcopy(TINY)
        c.update(match=conv, ratio=2.0)
        spec, d, ratios = monolith_plan(
            _plugin().Config.from_dict(c), 17, 3, n_gate=500, vocab_size=257
        )
        assert spec.batch_size == TINY["expert"]["batch_size"]
        assert ratios[key] == pytest.approx(1.0, rel=0.1), (conv, ratios)
        assert 1.4 < ratios["r_nonembedding"] < 2.8, ratios


def test_unknown_config_key_is_an_error():
    bad = copy.deepcopy(TINY)
    bad["expert"]["dmodel"] = 8
    with pytest.raises(ValueError, match=r"\[expert\]: unknown key.*dmodel"):
        _plugin().Config.from_dict(bad)


_CHILD = """
import sys, json
sys.path.insert(0, {tests!r})
from test_realworld_pipeline import _run, TINY
cfg = json.loads({cfg!r})
_run({out!r}, cfg)
"""


def _step(path) -> int:
    return int(torch.load(path, weights_only=False)["step"])


def _kill_when(out, cfg, ready, what):
    """Start the tiny run in a child on ``out``; SIGKILL it as soon as ``ready(job folder)`` holds.
    Returns False when the child finished first (nothing to test at that point)."""
    code = _CHILD.format(tests=str(Path(__file__).parent), cfg=json.dumps(cfg), out=str(out))
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    job = out / "ckpt" / "seed0-resample0"
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None:
        try:
            if job.is_dir() and ready(job):
                break
        except (OSError, RuntimeError, EOFError):  # a file caught mid-rename: look again
            pass
        time.sleep(0.002)
    killed = child.poll() is None
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (job / "done").is_file(), f"the job finished before the kill {what}"
    return killed


@pytest.mark.corpora(*TINY["corpora"])
def test_killed_run_resumes_every_row_at_each_stage_boundary(tmp_path):
    """Killed mid-expert, after the log-likelihood cache, after the first gate, mid-monolith (with
    gradient-conflict probes on both sides of the kill) and after the router, each time resumed:
    the final rows equal an uninterrupted run's exactly, the monolith's conflict rows included."""
    cfg = copy.deepcopy(TINY)
    cfg.update(resamples=[], oracle=[], checkpoint_every=3)
    cfg["expert"]["steps"] = 40
    cfg["mono"]["steps"] = 12
    ref = _run(tmp_path / "ref", cfg).frame()

    out = tmp_path / "killed"
    points = [
        ("mid-expert", lambda j: any(0 < _step(f) < 40 for f in j.glob("expert-scripture-*.pt"))),
        ("after the cache", lambda j: any(j.glob("loglik-*.pt"))),
        ("after the excess gate", lambda j: any(j.glob("gate-excess-*.pt"))),
        ("mid-monolith", lambda j: any(3 <= _step(f) < 12 for f in j.glob("mono_uniform-*.pt"))),
        ("after the router", lambda j: any(j.glob("router-*.pt"))),
    ]
    kills = [what for what, ready in points if _kill_when(out, cfg, ready, what)]
    assert len(kills) >= 3, f"only {kills} were interrupted: the test would prove little"
    mono = next((out / "ckpt" / "seed0-resample0").glob("mono_uniform-*.pt"))
    assert (
        len(torch.load(mono, weights_only=False)["hook"]["log"]) >= 2
    )  # probes before the kill kept

    resumed = _run(out, cfg).frame()
    assert len(resumed) == len(ref)
    conflict = resumed[(resumed["case"] == "conflict") & (resumed["method"] == "mono_uniform")]
    assert sorted(conflict["step"]) == list(range(0, 12, cfg["conflict_every"]))
    pd.testing.assert_frame_equal(resumed.reset_index(drop=True), ref.reset_index(drop=True))
