"""One honest error path: bad user input is one line ``modgen-bench: error: ...`` naming the
file, option or key, exit 2, with nothing written outside the output folder; anything else is
an internal error (exit 1, one line; the traceback only under --debug). Each case below was an
exit-1 internal error, a bare ``error: lo``, a traceback or a silent exit 0 before."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modgen_bench.cli import main
from modgen_bench.results import write_results
from modgen_bench.suites import load_plugin

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "tiny_suite"
EXAMPLE = ROOT / "examples" / "three_domains.json"

PLUGIN = """
def run(ctx):
    for seed in ctx.config["seeds"]:
        ctx.add("c", "m", "x", float(seed), seed=seed)
    if ctx.config.get("bug"):
        {}["lo"]                     # a bug of ours, not the user's
"""


def _suite(tmp_path, preset: str) -> Path:
    d = tmp_path / "suite"
    d.mkdir()
    (d / "seedy.py").write_text(PLUGIN)
    (d / "seedy.toml").write_text('[experiment]\nmodule = "seedy"\n[preset.quick]\n' + preset)
    return d


def _one_line(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("modgen-bench: error:"), err[0]
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


def _files(folder: Path) -> set:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize(
    "preset, args, needles",
    [
        ("seeds = [0]\nseed = inf\n", [], ["seedy.toml", "'seed'", "integer"]),
        ("seeds = [0]\n", ["--set", "seeds=[]"], ["seedy.toml", "made no rows", "seeds"]),
        ("seeds = [0]\n", ["--only"], ["--only", "seedy"]),
        ("seeds = [0]\n", ["--set", "sed=1"], ["--set sed", "seeds"]),
        ("seeds = [0]\n", ["--resume-from", "nowhere"], ["--resume-from"]),
    ],
)
def test_run_input_errors_are_one_named_line(tmp_path, capsys, preset, args, needles):
    suite = _suite(tmp_path, preset)
    outside = _files(tmp_path)
    rc = main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu", *args])
    assert rc == 2
    _one_line(capsys, *needles)
    assert {p for p in _files(tmp_path) if "out" not in p.relative_to(tmp_path).parts} == outside


def test_a_bug_is_an_internal_error_with_the_traceback_on_request(tmp_path, capsys):
    suite = _suite(tmp_path, "seeds = [0]\nbug = true\n")
    rc = main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("modgen-bench: internal error: KeyError")
    with pytest.raises(KeyError):
        main(["--debug", "run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"])


def test_log_file_that_cannot_be_written_is_named(tmp_path, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    rc = main(
        [
            "check",
            "thm3",
            "--instances",
            "1",
            "--out",
            str(tmp_path / "c"),
            "--log-file",
            "/dev/full",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()  # check prints its timings first
    assert rc == 2 and [e for e in err if "error" in e] == [err[-1]]
    assert "/dev/full" in err[-1] and "No space left" in err[-1]


@pytest.mark.parametrize(
    "content",
    [
        [1, 2],
        {"verdicts": []},
        {"verdicts": {"thm3": 1}},
        {"verdicts": {}, "instances": "50", "seed": 0},
        "not json",
    ],
)
def test_expected_file_of_the_wrong_shape_is_named(tmp_path, capsys, content):
    f = tmp_path / "pins.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    rc = main(
        ["check", "thm3", "--instances", "1", "--out", str(tmp_path / "c"), "--expected", str(f)]
    )
    assert rc == 2
    _one_line(capsys, "--expected", str(f))


def test_trust_plugins_naming_no_folder_is_an_error(tmp_path, capsys):
    assert main(["run", str(TINY), "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    rc = main(
        ["report", str(tmp_path / "tiny_suite-quick"), "--trust-plugins", str(tmp_path / "missing")]
    )
    assert rc == 2
    _one_line(capsys, "--trust-plugins", "missing")


@pytest.mark.parametrize(
    "field, value",
    [
        ("experiment", 5),
        ("config", [1, 2]),
        ("overrides", "a=b"),
        ("code_version", "abc"),
        ("wall_seconds", "fast"),
        ("finished", 12),
        ("preset", {"a": 1}),
        ("suite", None),
        ("git_commit", 7),
        ("run_key", ["x"]),
    ],
)
def test_mistyped_run_json_fields_still_report_or_are_named(tmp_path, capsys, field, value):
    rows = pd.DataFrame(
        [
            {
                "suite": "s",
                "case": "c",
                "method": m,
                "seed": s,
                "lam": "0.5,0.5",
                "metric": "kl",
                "value": v,
            }
            for s, (m, v) in enumerate([("gate", 0.1), ("mono", 0.2)] * 2)
        ]
    )
    for name in ("a", "b"):  # two runs of one experiment: the config comparison runs
        info = {
            "experiment": "e",
            "preset": "quick",
            "config": {"k": name},
            "code_version": {"source": name},
            field: value,
        }
        write_results(tmp_path / "root" / f"e-{name}", rows, info)
    rc = main(["report", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "internal error" not in err and "Traceback" not in err


def _npz(path: Path, **members) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **members)
    path.write_bytes(buf.getvalue())
    return path


def _with_member(path: Path, name: str, header_shape: tuple) -> None:
    """Add ``name.npy`` whose header claims ``header_shape`` float64 but holds 8 bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": header_shape}
    )
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(f"{name}.npy", head.getvalue() + b"\0" * 8)


def test_npz_with_zero_problems_is_an_error(tmp_path, capsys):
    f = _npz(tmp_path / "none.npz", domains=np.zeros((0, 2, 3)), experts=np.zeros((0, 2, 3)))
    assert main(["solve", str(f)]) == 2
    _one_line(capsys, str(f), "0 problems")


@pytest.mark.parametrize("batched", [False, True])
def test_npz_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, capsys, batched):
    f = tmp_path / "huge.npz"
    ok = json.loads(EXAMPLE.read_text())
    experts = np.array(ok["experts"])
    _npz(f, experts=experts[None] if batched else experts)
    _with_member(f, "domains", (10**6, 10**6, 3) if batched else (10**6, 10**7))
    assert main(["solve", str(f)]) == 2
    _one_line(capsys, str(f), "domains", "claims shape")


def test_npz_members_are_read_lazily(tmp_path, capsys):
    ok = json.loads(EXAMPLE.read_text())
    f = _npz(tmp_path / "p.npz", domains=np.array(ok["domains"]), experts=np.array(ok["experts"]))
    _with_member(f, "unused", (10**7, 10**7))  # 800 TB if it were read
    assert main(["solve", str(f)]) == 0
    assert "status: optimal" in capsys.readouterr().out


def _scaling_plugin():
    return load_plugin(ROOT / "real_world" / "scaling" / "scaling.py")


def test_scaling_verdict_with_one_seed_says_so():
    """A run with one seed has no interval (the seed error cannot be estimated from one seed): the
    verdict table says 'one seed: no interval' and the every-mixture verdict stays undecided,
    instead of failing on the missing bound or claiming a win from the window error alone."""
    from modgen_bench.stats import every_mixture, two_level_interval

    plugin = _scaling_plugin()
    one = two_level_interval([-0.25], [0.01])
    assert plugin._fmt(one) == "-0.2500 (one seed: no interval)"
    assert every_mixture(["(1, 0)", "uniform"], [one, one]).verdict == "undecided"
    two = two_level_interval([-0.3, -0.2], [0.0, 0.0])
    assert plugin._fmt(two) == f"-0.2500 [{two.lo:+.4f}, {two.hi:+.4f}]"
