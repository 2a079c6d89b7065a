"""Runs are identities and results stay typed.

A tiny suite in a temp folder whose plug-in counts its executions: a second config gets its own
folder and report section with its own numbers, a code change recomputes, --resume skips,
--force recomputes, and --set overrides are recorded in the key.
"""

from __future__ import annotations

import json
import re
import textwrap

import pandas as pd
import pytest

from modgen_bench.cli import main
from modgen_bench.results import read_results, read_run, typed, write_results
from modgen_bench.runner import apply_overrides, parse_overrides, run_key, run_suite

PLUGIN = """
from pathlib import Path

def run(ctx):
    out = Path(ctx.out_dir)
    stage = out / "stage.txt"                     # a stage checkpoint, reused within one key
    if not stage.exists():
        stage.write_text("computed")
        counter = Path(ctx.config["counter"])
        counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
    for step in range(3):
        ctx.add("c", "gate", "loss", ctx.config["offset"] + 0.0936 + step, step=step)
    ctx.add("c", "gate", "final", ctx.config["offset"] + 0.0936)   # no step: a partly blank column
"""


@pytest.fixture
def suite(tmp_path):
    d = tmp_path / "tinysuite"
    d.mkdir()
    (d / "tiny.py").write_text(PLUGIN)
    (d / "tiny.toml").write_text(
        textwrap.dedent(f'''
        [experiment]
        module = "tiny"
        [preset.quick]
        offset = 0.0
        counter = "{tmp_path / "count.txt"}"
        ''')
    )
    return d


def _count(suite) -> int:
    return int((suite.parent / "count.txt").read_text())


def test_second_config_gets_its_own_section_with_its_own_numbers(suite, tmp_path):
    out = tmp_path / "out"
    run_suite(str(suite), out=str(out), device="cpu", log=lambda *a: None)
    root = run_suite(
        str(suite), out=str(out), device="cpu", log=lambda *a: None, overrides={"offset": 10.0}
    )
    runs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("tiny-"))
    assert len(runs) == 2, runs
    html = (root / "index.html").read_text()
    sections = re.split(r"<h2 ", html)
    mine = {
        r: next(s for s in sections if s.startswith(f'id="tiny-run-{r.split("-")[1]}-'))
        for r in runs
    }
    values = {}
    for r, text in mine.items():
        info = json.loads((root / r / "run.json").read_text())
        values[info["config"]["offset"]] = text
    assert ">0.0936<" in values[0.0] and "10.0936" not in values[0.0]
    assert ">10.0936<" in values[10.0] and ">0.0936<" not in values[10.0]
    # rows never pool: each carries the folder it came from
    df, _ = read_results(root)
    assert sorted(df.groupby("run")["value"].min().round(4)) == [0.0936, 10.0936]


def test_code_change_recomputes_resume_skips_force_recomputes(suite, tmp_path):
    out, quiet = tmp_path / "out", (lambda *a: None)
    run_suite(str(suite), out=str(out), device="cpu", log=quiet)
    assert _count(suite) == 1
    run_suite(str(suite), out=str(out), device="cpu", log=quiet)  # identical key: stage reused
    assert _count(suite) == 1
    run_suite(str(suite), out=str(out), device="cpu", log=quiet, resume=True)
    assert _count(suite) == 1
    (suite / "tiny.py").write_text(PLUGIN + "\n# a code change\n")
    run_suite(str(suite), out=str(out), device="cpu", log=quiet)  # new key: recomputed
    assert _count(suite) == 2
    run_suite(str(suite), out=str(out), device="cpu", log=quiet, force=True)
    assert _count(suite) == 3
    (suite / "tiny.py").write_text(PLUGIN + "\n# another code change\n")
    root = run_suite(str(suite), out=str(out), device="cpu", log=quiet, resume=True)
    assert _count(suite) == 3  # --resume: the stage of the same config is reused
    infos = [json.loads(p.read_text()) for p in root.glob("tiny-*/run.json")]
    assert len(infos) == 3 and sum(bool(i.get("resumed_from")) for i in infos) == 1
    with pytest.raises(ValueError, match="contradict"):
        run_suite(str(suite), out=str(out), device="cpu", log=quiet, force=True, resume=True)


def test_key_covers_config_device_and_code():
    code = {"source": "a"}
    base = run_key("e", "quick", {"x": 1}, "cpu", code)
    assert base == run_key("e", "quick", {"x": 1}, "cpu", {"source": "a", "git_commit": "other"})
    assert base != run_key("e", "quick", {"x": 2}, "cpu", code)
    assert base != run_key("e", "quick", {"x": 1}, "cuda", code)
    assert base != run_key("e", "quick", {"x": 1}, "cpu", {"source": "b"})
    assert base != run_key("e", "full", {"x": 1}, "cpu", code)


def test_set_overrides_parse_toml_and_refuse_unknown_keys():
    o = parse_overrides(
        ["lm_steps=50", "cases=['clean']", "expert.lr=1e-3", "name=abc", "flag=true"]
    )
    assert o == {"lm_steps": 50, "cases": ["clean"], "expert.lr": 1e-3, "name": "abc", "flag": True}
    cfg = {"lm_steps": 400, "cases": ["a", "b"], "expert": {"lr": 0.1}, "name": "x", "flag": False}
    new = apply_overrides(cfg, o, "exp")
    assert new["expert"]["lr"] == 1e-3 and cfg["expert"]["lr"] == 0.1  # a copy
    with pytest.raises(ValueError, match="no key 'lm_stpes'.*lm_steps"):
        apply_overrides(cfg, {"lm_stpes": 3}, "exp")
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["novalue"])


@pytest.mark.parametrize(
    "item, match",
    [
        ("lm_steps=" + "[" * 2000 + "]" * 2000, "nested too deeply|expected a number"),
        ("lm_steps=" + str(10**400), "64-bit"),
        ("lm_steps=2.5", "expected an integer"),
        ("lm_steps='50'", "expected a number"),
        ("flag=1", "expected a bool"),
        ("cases=3", "expected an array"),
    ],
)
def test_set_overrides_keep_the_preset_kind(item, match):
    cfg = {"lm_steps": 400, "cases": ["a", "b"], "flag": False, "lr": 0.1}
    with pytest.raises(ValueError, match=match):
        apply_overrides(cfg, parse_overrides([item]), "exp")
    assert apply_overrides(cfg, parse_overrides(["lr=1"]), "exp")["lr"] == 1.0


def test_cli_set_and_force_are_user_errors_when_wrong(suite, tmp_path, capsys):
    rc = main(
        ["run", str(suite), "--out", str(tmp_path / "o"), "--device", "cpu", "--set", "offst=2"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("modgen-bench: error:") and "offst" in err
    rc = main(
        [
            "run",
            str(suite),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cpu",
            "--set",
            "offset=2",
            "--force",
        ]
    )
    assert rc == 0
    info = json.loads(next((tmp_path / "o").rglob("run.json")).read_text())
    assert info["config"]["offset"] == 2 and info["overrides"] == {"offset": 2}


@pytest.mark.parametrize("drop_parquet", [False, True])
def test_partly_blank_step_stays_numeric(tmp_path, drop_parquet):
    rows = pd.DataFrame(
        [
            {
                "suite": "s",
                "case": "c",
                "method": "m",
                "seed": 0,
                "lam": "",
                "metric": "final",
                "value": 1.0,
            },
            *(
                {
                    "suite": "s",
                    "case": "c",
                    "method": "m",
                    "seed": 0,
                    "lam": "0.5,0.5",
                    "metric": "traj",
                    "value": float(v),
                    "step": 10 * v,
                    "group": "random",
                }
                for v in range(12)
            ),
        ]
    )
    write_results(tmp_path / "r", rows, {"experiment": "e"})
    if drop_parquet:  # the CSV export alone reads back with the same dtypes
        (tmp_path / "r" / "results.parquet").unlink()
    got = read_run(tmp_path / "r").rows
    assert pd.api.types.is_float_dtype(got["step"]) and got["step"].isna().sum() == 1
    assert sorted(got["step"].dropna()) == [
        10.0 * v for v in range(12)
    ]  # numeric order, not "100" < "20"
    assert str(got["seed"].dtype) == "Int64" and got["lam"].tolist()[0] == ""
    assert got["group"].tolist()[0] == "" and got["group"].tolist()[1] == "random"


def test_typed_keeps_mixed_columns_as_text():
    df = typed(pd.DataFrame({"value": ["1.5", ""], "note": [3, "abc"], "n": ["1", "2"]}))
    assert df["value"].isna().tolist() == [False, True]
    assert df["note"].tolist() == ["3", "abc"] and pd.api.types.is_numeric_dtype(df["n"])
