"""The convergence suite plug-in (synthetic/convergence.py): runs, and reports from its rows alone."""
from pathlib import Path

import pandas as pd
import pytest

from modgen_bench.results import RunContext
from modgen_bench.suites import discover

SUITE = Path(__file__).resolve().parent.parent / "synthetic"


@pytest.fixture(scope="module")
def plugin():
    exp = {e.name: e for e in discover(str(SUITE))}["convergence"]
    return exp, exp.load()


def test_presets_name_only_known_methods(plugin):
    exp, mod = plugin
    for preset in ("quick", "full"):
        cfg = exp.config(preset)
        assert set(cfg["methods"]) <= set(mod.METHODS)
        assert set(cfg.get("structured_methods", [])) <= set(mod.METHODS)
        assert set(cfg["structured"]) <= set(mod.STRUCTURED)


def test_tiny_run_and_report(plugin, tmp_path):
    _, mod = plugin
    cfg = {"seed": 0, "n_random": 1, "p": 3, "N": 8, "structured": ["leaking"], "steps": 40,
           "log_every": 10, "methods": ["alg1", "spd-kl", "spd-nll"],
           "structured_methods": ["alg1"], "per_domain_sweep": [16], "sweep_cases": 1}
    ctx = RunContext(suite="synthetic", config=cfg, out_dir=tmp_path)
    mod.run(ctx)
    df = ctx.frame()
    fin = df[df["metric"].eq("final_suboptimality")]
    assert set(fin["method"]) == {"alg1", "spd-kl", "spd-nll", "spd-kl@16"}
    assert (fin["value"] >= -1e-9).all()
    assert set(df.loc[df["case"].eq("leaking"), "support"]) == {"union"}
    # report rebuilt from the rows alone, after a CSV round trip
    df.to_csv(tmp_path / "r.csv", index=False)
    back = pd.read_csv(tmp_path / "r.csv", keep_default_na=False, dtype={"lam": str})
    sections = mod.report(back, tmp_path)
    titles = [s.title for s in sections]
    assert any("across methods" in t for t in titles) and any("steps to reach" in t for t in titles)
    main = next(s for s in sections if "across methods" in s.title).tables[0][1]
    row = main.set_index("method").loc["alg1"]
    want = fin[(fin["method"] == "alg1") & (fin["case"] == "leaking")]["value"].iloc[0]
    assert row["leaking"] == f"{want:.4f}"
    figs = [f for s in sections for _, f in s.figures]
    assert len(figs) == 3 and all(Path(f).stat().st_size > 0 for f in figs)
