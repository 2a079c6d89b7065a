"""CLI conventions: --version, python -m, help on every option with its default, `list`,
registry-driven `spd --method`, --quiet / --log-file, progress bars off without a terminal."""

import argparse
import json
import logging
import os
import subprocess
import sys

import pytest

from modgen_bench.cli import build_parser, main


@pytest.fixture(autouse=True)
def _drop_log_handlers():
    """`main` installs stderr/file handlers on the root logger; a later test must not write
    through them to a closed capture."""
    yield
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_modgen_bench_handler", False)]:
        root.removeHandler(h)
        h.close()


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def test_version_and_python_m(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"modgen-bench {metadata.version('modgen-bench')}"
    out = subprocess.run(
        [sys.executable, "-m", "modgen_bench", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("modgen-bench ")


def test_every_option_has_help_and_shows_its_default():
    subs = _subparsers(build_parser())
    assert {"solve", "spd", "check", "run", "report", "bench", "list"} <= set(subs)
    for name, parser in subs.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    text = subs["spd"].format_help()
    assert "(default: spd)" in text and "(default: table)" in text
    assert "(default: 2000)" in subs["check"].format_help()
    from theory_checks import DEFAULT_INSTANCES

    assert DEFAULT_INSTANCES == 2000  # the library default is the CLI's
    assert "(default: 0)" in subs["check"].format_help()  # a zero default is shown
    assert "(default: None)" not in subs["spd"].format_help()
    assert "(default: [])" not in subs["run"].format_help()


def test_top_help_cites_no_file_that_does_not_ship(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert not {"DESIGN.md", "PAPER.md", "STYLE.md", "README.md"} & set(out.split())
    assert "DESIGN" not in out and "list suites" in out


def test_list_reads_the_registries(capsys):
    from modgen_bench.algorithms.harness import method_names
    from theory_checks import CLAIMS

    assert main(["list", "claims", "--json"]) == 0
    assert [r["claim"] for r in json.loads(capsys.readouterr().out)] == list(CLAIMS)
    assert main(["list", "methods", "--json"]) == 0
    assert [r["method"] for r in json.loads(capsys.readouterr().out)] == method_names()
    assert main(["list", "suites", "--json"]) == 0
    assert {"synthetic", "real_world"} <= {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert main(["list", "experiments", "--suite", "synthetic", "--json"]) == 0
    exps = json.loads(capsys.readouterr().out)
    assert {e["experiment"] for e in exps} >= {"convergence", "successor"}
    assert main(["list", "presets", "--suite", "synthetic"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["suite", "experiment", "preset"] and len(table) == 1 + sum(
        len(e["presets"]) for e in exps
    )
    assert main(["list", "examples", "--json"]) == 0
    assert "examples/three_domains.json" in {
        r["example"] for r in json.loads(capsys.readouterr().out)
    }


def test_list_rejects_an_unknown_kind(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "nosuch"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.fixture
def new_lam_rule():
    """A lam rule registered the way the README says: subclass LamRule, decorate."""
    from modgen_bench.algorithms.lam_rules import LAM_RULES, LamRule

    @LAM_RULES.register("halfstep")
    class HalfStep(LamRule):
        def step(self, signal):
            return (self.lam + (signal == signal.max()).to(self.lam)) / 2

    yield "halfstep"
    del LAM_RULES["halfstep"]


def test_spd_accepts_a_newly_registered_lam_rule(new_lam_rule, capsys):
    assert (
        main(
            [
                "spd",
                "examples/three_domains.json",
                "--method",
                new_lam_rule,
                "--steps",
                "30",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == new_lam_rule and out["suboptimality"] >= -1e-9
    assert main(["list", "methods", "--json"]) == 0
    assert new_lam_rule in {r["method"] for r in json.loads(capsys.readouterr().out)}


def test_spd_rejects_an_unknown_method_listing_the_registered_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["spd", "examples/three_domains.json", "--method", "nosuch"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "'groupdro'" in err


def test_solve_finds_the_shipped_examples_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "examples/three_domains.json", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "optimal"


def test_quiet_and_log_file(tmp_path, capsys):
    log_file = tmp_path / "check.log"
    assert (
        main(
            [
                "check",
                "lemma1",
                "--instances",
                "2",
                "--out",
                str(tmp_path / "a"),
                "--log-file",
                str(log_file),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "lemma1:" in err  # per-claim timing, INFO
    logged = log_file.read_text()
    assert "INFO theory_checks: " in logged and "lemma1:" in logged
    assert (
        main(["check", "lemma1", "--instances", "2", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    )
    captured = capsys.readouterr()
    assert "lemma1:" not in captured.err and "lemma1" in captured.out  # the table still prints


def test_progress_bars_are_off_without_a_terminal_throttled_on_one_and_named():
    import io
    import pty

    from modgen_bench import logs

    logs.configure()
    name = logs.label("train_lm", model="expert-code", seed=0, rep=None)
    assert name == "train_lm model=expert-code seed=0"
    assert logs.progress(range(3), desc=name, file=io.StringIO()).disable  # a pipe or a file
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            bar = logs.progress(range(3), desc=name, file=tty)
            assert not bar.disable and bar.desc == name and bar.mininterval == logs.MININTERVAL
            bar.close()
            logs.configure(quiet=True)
            assert logs.progress(range(3), desc=name, file=tty).disable
    finally:
        os.close(master)
        logs.configure()


def test_building_the_parser_imports_no_torch():
    """The registry-driven spd --method choices are read only when needed (solve stays light)."""
    code = (
        "import sys; from modgen_bench.cli import build_parser; p = build_parser(); "
        "p.parse_args(['solve', 'x.json']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_messages_follow_stderr_after_it_is_swapped(capsys):
    """A handler made while one stderr was current writes to the stderr current at emit time."""
    import io

    from modgen_bench import logs

    logs.configure()
    swapped = io.StringIO()
    real, sys.stderr = sys.stderr, swapped
    try:
        logging.getLogger("modgen_bench.test").info("to the new stderr")
    finally:
        sys.stderr = real
    assert swapped.getvalue() == "to the new stderr\n"
