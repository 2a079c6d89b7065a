"""The contract of every experiment in every shipped suite, run through the runner on its `smoke`
preset (seconds): rows in the tidy columns, run.json, ``done`` last, and a report built from them.

The experiments are the CLI's own (`modgen-bench list experiments`: `resources.bundled_suites`
and `suites.discover`), so a new suite folder or TOML is tested by existing. Its `smoke` preset
(sizes only, like every preset) is what keeps the run short; an experiment without one fails here.
"""

import json
import math

import pytest

from modgen_bench.data.corpora import CORPORA
from modgen_bench.resources import bundled, bundled_suites
from modgen_bench.results import COLUMNS, is_done, read_run
from modgen_bench.runner import run_suite
from modgen_bench.suites import discover

PRESET = "smoke"


def _corpora_named(value) -> set:
    """The registered corpora a preset names anywhere (a ``corpora`` list, a scaling triple, a
    contamination's base and donor), so a run that needs them is skipped where they are absent."""
    if isinstance(value, dict):
        return set().union(*map(_corpora_named, value.values()))
    if isinstance(value, list):
        return set().union(*map(_corpora_named, value))
    return {value} if isinstance(value, str) and value in CORPORA else set()


def _cases():
    cases = []
    for suite in bundled_suites():
        for exp in discover(str(bundled(suite))):
            corpora = sorted(_corpora_named(exp.presets.get(PRESET, {})))
            marks = [pytest.mark.corpora(*corpora)] if corpora else []
            cases.append(pytest.param(suite, exp.name, marks=marks, id=f"{suite}/{exp.name}"))
    return cases


def test_every_shipped_suite_is_covered():
    """The contract runs over the real listing: the shipped suites and their experiments."""
    ids = {c.id for c in _cases()}
    assert {"synthetic/convergence", "synthetic/successor", "real_world/text3"} <= ids


@pytest.mark.parametrize("suite,name", _cases())
def test_experiment_contract(suite, name, tmp_path):
    exp = {e.name: e for e in discover(str(bundled(suite)))}[name]
    assert PRESET in exp.presets, (
        f"{exp.path}: no [preset.{PRESET}]; add one that runs in seconds so this contract "
        "covers the experiment"
    )
    root = run_suite(
        str(bundled(suite)),
        preset=PRESET,
        device="cpu",
        out=str(tmp_path),
        only=[name],
        log=lambda *a, **k: None,
    )
    runs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{name}-"))
    assert len(runs) == 1, runs
    run_dir = runs[0]
    for f in ("results.parquet", "results.csv", "run.json", "done"):
        assert (run_dir / f).is_file(), f
    assert is_done(run_dir)
    run = read_run(run_dir)
    rows = run.rows
    assert len(rows) > 0 and set(COLUMNS) <= set(rows.columns)
    assert set(rows["experiment"]) == {name} and set(rows["suite"]) == {exp.suite}
    assert rows["metric"].astype(str).str.len().gt(0).all()
    assert any(math.isfinite(v) for v in rows["value"])
    assert json.loads((run_dir / "done").read_text())["rows"] == len(rows)
    info = run.info
    assert (info["experiment"], info["preset"]) == (name, PRESET)
    assert run_dir.name == f"{name}-{info['run_key']}"
    report = (root / "report.md").read_text()
    assert (root / "index.html").is_file() and name in report
    module = exp.load()
    if hasattr(module, "report"):  # the plug-in's own sections, not the generic table
        assert "No trusted plug-in" not in report and "generic table" not in report
