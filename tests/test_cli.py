"""The `modgen-bench solve` contract (DESIGN.md): keys, exit statuses, lazy imports."""

import json
import subprocess
import sys

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.cli import main
from modgen_bench.problem import DiscreteProblem

KEYS = {
    "status",
    "value",
    "lambda",
    "per_domain_kl",
    "model",
    "gate",
    "duality_gap",
    "method",
    "solver",
    "seconds",
}


@pytest.fixture
def problem_file(tmp_path):
    path = tmp_path / "prob.json"
    instances.make("overlap", 3, p=3, N=12).save(path)
    return path


@pytest.mark.parametrize("method", ["waterfill", "cvxpy"])
def test_solve_json_contract(problem_file, method, capsys):
    assert main(["solve", str(problem_file), "--method", method, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    assert out["status"] == "optimal" and out["method"] == method
    assert len(out["lambda"]) == 3 and abs(sum(out["lambda"]) - 1) < 1e-9
    assert len(out["model"]) == 12 and abs(sum(out["model"]) - 1) < 1e-9
    assert np.asarray(out["gate"]).shape == (12, 3)
    assert abs(max(out["per_domain_kl"]) - out["value"]) < 1e-12
    assert out["duality_gap"] >= -1e-9


def test_infeasible_is_an_answer(tmp_path, capsys):
    path = tmp_path / "lemma1.json"
    DiscreteProblem.from_arrays([[1.0, 0.0]], [[0.9, 0.1]]).save(path)
    assert main(["solve", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "infeasible" and "--support union" in out["reason"]
    assert main(["solve", str(path), "--support", "union", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["value"] + np.log(0.9)) < 1e-9


def test_malformed_input_exits_2_with_one_message(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"domains": [[0.5, 0.6]], "experts": [[0.5, 0.5]]}))
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 0 sums to 1.1" in err


def test_waterfill_imports_neither_torch_nor_cvxpy(problem_file):
    code = (
        "import sys; from modgen_bench.cli import main; "
        f"main(['solve', {str(problem_file)!r}, '--json']); "
        "print('LOADED', 'torch' in sys.modules, 'cvxpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("LOADED False False")


def test_report_index_links_every_report(tmp_path, capsys):
    from modgen_bench.cli import main

    assert main(["report", str(tmp_path), "--index"]) == 2  # nothing to index yet
    assert "no report.md" in capsys.readouterr().err
    for sub, title in [("checks", "Theory checks"), ("synthetic-quick/run-ab12", "Synthetic")]:
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "report.md").write_text(
            f"# {title}\n\n## A section\n\nFirst words of {title}.\n"
        )
    assert main(["report", str(tmp_path), "--index"]) == 0
    index_md = (tmp_path / "index.md").read_text()
    assert (
        "[Theory checks](./checks/report.md)" in index_md
        and "First words of Theory checks." in index_md
    )
    assert "(./synthetic-quick/run-ab12/index.html)" in index_md
    assert "synthetic-quick/run-ab12/index.html" in (tmp_path / "index.html").read_text()


def test_an_unknown_preset_names_the_suites_presets_and_writes_nothing(tmp_path, capsys):
    """Presets come from the TOMLs (smoke, decisive, ...), so the check is the runner's."""
    assert main(["run", "synthetic", "--preset", "nosuch", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no preset 'nosuch'" in err[0] and "smoke" in err[0]
    assert list(tmp_path.iterdir()) == []
