"""`check --strict` against the pinned verdicts (theory_checks/expected.json), and the warning when
a budget is below the one that found a pinned counterexample."""

import json
import logging

import pytest

from modgen_bench.cli import main
from theory_checks import CLAIMS, expected


@pytest.fixture(autouse=True)
def _drop_log_handlers():
    yield
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_modgen_bench_handler", False)]:
        root.removeHandler(h)
        h.close()


def test_the_pin_covers_every_claim_and_names_its_counterexample_budgets():
    pinned = expected.load()
    assert set(pinned["verdicts"]) == set(CLAIMS)
    for claim, readings in pinned["verdicts"].items():
        for reading, want in readings.items():
            assert want["status"] in ("holds", "fails", "vacuous", "outside hypothesis"), (
                claim,
                reading,
            )
            if want["status"] == "fails":
                assert 1 <= want["min_instances"] <= pinned["instances"], (claim, reading)
    # 5 instances say 'holds' where 50 find Lemma 1's counterexample: the budget warning's case
    assert pinned["verdicts"]["lemma1"]["support=domains"]["min_instances"] > 5


def test_strict_passes_at_the_pinned_budget(tmp_path):
    pinned = expected.load()
    assert (
        main(
            [
                "check",
                "lemma1",
                "--strict",
                "--instances",
                str(pinned["instances"]),
                "--seed",
                str(pinned["seed"]),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )


def test_strict_exits_1_when_a_verdict_differs(tmp_path, caplog):
    pinned = expected.load()
    pinned["verdicts"]["lemma1"]["support=union"]["status"] = "fails"  # a wrong pin
    pin_file = tmp_path / "expected.json"
    pin_file.write_text(json.dumps(pinned))
    from theory_checks import run_checks

    args = dict(
        claims=["lemma1"],
        instances=pinned["instances"],
        seed=pinned["seed"],
        out=str(tmp_path / "out"),
        expected=pin_file,
    )
    with caplog.at_level(logging.WARNING, logger="theory_checks"):
        assert run_checks(strict=True, **args) == 1
    assert "lemma1 [support=union]: holds, pinned fails" in caplog.text
    assert run_checks(strict=False, **args) == 0  # without --strict: reported, exit 0


def test_small_budget_warns_before_it_reports_holds(tmp_path, capsys):
    need = expected.load()["verdicts"]["lemma1"]["support=domains"]["min_instances"]
    assert main(["check", "lemma1", "--instances", str(need - 1), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"--instances {need - 1} is below the {need} that found its counterexample" in err
    assert main(["check", "lemma1", "--instances", str(need), "--out", str(tmp_path)]) == 0
    assert "is below the" not in capsys.readouterr().err


def test_budget_warnings_only_for_claims_that_run():
    pinned = {
        "instances": 50,
        "seed": 0,
        "verdicts": {
            "a": {"r": {"status": "fails", "min_instances": 20}},
            "b": {"r": {"status": "holds"}},
        },
    }
    assert expected.budget_warnings(["b"], 5, pinned) == []
    assert len(expected.budget_warnings(["a", "b"], 19, pinned)) == 1
    assert expected.budget_warnings(["a"], 20, pinned) == []


def test_strict_through_the_cli_with_a_pin_file(tmp_path, capsys):
    pinned = expected.load()
    pinned["verdicts"]["lemma1"]["support=domains"]["status"] = "holds"  # a wrong pin
    pin_file = tmp_path / "pin.json"
    pin_file.write_text(json.dumps(pinned))
    argv = [
        "check",
        "lemma1",
        "--instances",
        str(pinned["instances"]),
        "--out",
        str(tmp_path / "o"),
        "--expected",
        str(pin_file),
    ]
    assert main(argv + ["--strict"]) == 1
    assert "lemma1 [support=domains]: fails, pinned holds" in capsys.readouterr().err
    assert main(argv) == 0


def test_a_missing_pin_file_is_a_user_error(tmp_path, capsys):
    assert (
        main(
            [
                "check",
                "lemma1",
                "--instances",
                "2",
                "--out",
                str(tmp_path),
                "--expected",
                str(tmp_path / "nope.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("modgen-bench: error:") and "nope.json" in err and err.count("\n") == 1
