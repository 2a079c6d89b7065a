"""The convergence suite plug-in (synthetic/convergence.py): it runs, and reports from its rows
alone."""

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
    cfg = {
        "seed": 0,
        "n_random": 1,
        "p": 3,
        "N": 8,
        "structured": ["leaking"],
        "steps": 40,
        "log_every": 10,
        "methods": ["alg1", "spd-kl", "spd-nll"],
        "structured_methods": ["alg1"],
        "per_domain_sweep": [16],
        "sweep_cases": 1,
    }
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


def test_steps_figure_gives_each_method_one_colour_and_one_legend_entry(plugin):
    """Panels run different subsets of methods: a method keeps its colour in every panel, and the
    legend lists every plotted method once, with the colour its lines have."""
    _, mod = plugin
    rows = [
        {"group": g, "method": m, "step": s, "value": 0.1 / (s + 1)}
        for g, ms in [("random", ["alg1", "spd-kl", "spd-nll"]), ("leaking", ["spd-nll"])]
        for m in ms
        for s in range(3)
    ]
    fig = mod.steps_figure(pd.DataFrame(rows), ["random", "leaking"])
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colours) == {"alg1", "spd-kl", "spd-nll"}
    assert all(len(c) == 1 for c in colours.values())
    legend = fig.axes[-1].get_legend()
    names = [t.get_text() for t in legend.get_texts()]
    assert sorted(names) == sorted(colours)
    for name, handle in zip(names, legend.legend_handles, strict=True):
        assert {handle.get_color()} == colours[name]
    assert len({next(iter(c)) for c in colours.values()}) == 3
