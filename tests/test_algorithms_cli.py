"""`modgen-bench spd` through the real entry point (DESIGN.md CLI contract)."""

import json

import numpy as np

from modgen_bench import instances
from modgen_bench.cli import main
from modgen_bench.problem import DiscreteProblem

KEYS = {"worst_case_kl", "Z", "exact_value", "suboptimality", "lambda", "steps", "method"}


def _run(capsys, *argv):
    rc = main(["spd", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out


def test_spd_json_keys_and_values(tmp_path, capsys):
    path = tmp_path / "p.json"
    instances.make("dirichlet", 0, p=3, N=8).save(path)
    rc, out = _run(capsys, path, "--json", "--steps", "40", "--seed", "1")
    assert rc == 0
    obj = json.loads(out.out)
    assert KEYS <= set(obj)
    assert obj["steps"] == 40 and obj["method"] == "spd" and obj["lam_signal"] == "kl"
    assert obj["suboptimality"] == obj["worst_case_kl"] - obj["exact_value"]
    assert len(obj["lambda"]) == 3 and abs(sum(obj["lambda"]) - 1) < 1e-9
    rc, again = _run(capsys, path, "--json", "--steps", "40", "--seed", "1")
    assert json.loads(again.out)["worst_case_kl"] == obj["worst_case_kl"]  # same seed, same numbers


def test_alg1_and_peers_through_the_cli(tmp_path, capsys):
    path = tmp_path / "p.json"
    instances.make("leaking", 0).save(path)
    rc, out = _run(capsys, path, "--json", "--method", "alg1", "--support", "union")
    obj = json.loads(out.out)
    assert rc == 0 and obj["suboptimality"] < 1e-3 and abs(obj["Z"] - 1) < 1e-9
    rc, out = _run(
        capsys,
        path,
        "--json",
        "--method",
        "doremi",
        "--support",
        "union",
        "--steps",
        "20",
        "--gate",
        "linear",
    )
    assert rc == 0 and json.loads(out.out)["lam_signal"] == "excess"


def test_empty_G1_is_one_clear_error(tmp_path, capsys):
    """PAPER.md Lemma 1's flaw: the experts leak mass off X0, so no gate has Z = 1."""
    path = tmp_path / "bad.json"
    DiscreteProblem.from_arrays([[1.0, 0.0]], [[0.9, 0.1]]).save(path)
    rc, out = _run(capsys, path, "--json")
    assert rc == 2 and "G1 is empty" in out.err and out.out == ""
    rc, out = _run(capsys, path, "--json", "--support", "union", "--steps", "5")
    assert rc == 0 and np.isfinite(json.loads(out.out)["worst_case_kl"])


def test_human_output(tmp_path, capsys):
    path = tmp_path / "p.json"
    instances.make("dirichlet", 0, p=2, N=5).save(path)
    rc, out = _run(capsys, path, "--method", "alg1", "--steps", "50")
    assert rc == 0 and "suboptimality" in out.out and "domain1" in out.out
