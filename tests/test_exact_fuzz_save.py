"""`bench fuzz --save-failures DIR`: every inaccurate instance is kept as a problem file that
re-solves to the same answer, so each leftover can be reproduced on its own."""

import numpy as np

from modgen_bench.bench.fuzz import fuzz
from modgen_bench.cli import main
from modgen_bench.exact import solve
from modgen_bench.problem import DiscreteProblem


def _first_path_only(problem, method="waterfill", support="domains", tol=None):
    """`exact.solve` with a tolerance nothing meets and no fallback chain (fast): inaccurate."""
    return solve(problem, method, support, tol=-1.0, fallback=False)


def test_saved_failures_reload_and_resolve_alike(tmp_path, monkeypatch):
    from modgen_bench import exact

    monkeypatch.setattr(exact, "solve", _first_path_only)
    res = fuzz(instances=6, seed=3, save_failures=tmp_path)
    files = sorted(tmp_path.glob("fuzz-3-*-inaccurate-*.json"))
    assert res["counts"]["inaccurate"] == len(files) > 0
    for f in files:
        support = f.stem.rsplit("-", 1)[1]
        sol = _first_path_only(DiscreteProblem.load(f), support=support)
        assert sol.status == "inaccurate" and np.isfinite(sol.value)


def test_cli_save_failures_option(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "fuzz",
                "--instances",
                "3",
                "--seed",
                "2",
                "--save-failures",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "fuzz: 3 instances (seed 2)" in out
    saved = list((tmp_path / "f").glob("*.json")) if (tmp_path / "f").exists() else []
    assert len(saved) == int(out.split("inaccurate ")[1].split()[0])
