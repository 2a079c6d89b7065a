"""`modgen-bench solve FILE [FILE ...] [--tol T]`: one JSON object per line, batched NPZ archives,
status `inaccurate` with its bound interval and exit status 3."""

import json

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.cli import main
from modgen_bench.exact import solve


@pytest.fixture
def files(tmp_path):
    probs = [instances.make("overlap", s, p=3, N=12) for s in range(3)]
    paths = []
    for s, prob in enumerate(probs):
        paths.append(tmp_path / f"prob{s}.json")
        prob.save(paths[-1])
    return probs, paths


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_several_files_give_one_json_line_each(files, capsys):
    probs, paths = files
    assert main(["solve", *map(str, paths), "--json"]) == 0
    lines = _lines(capsys)
    assert [o["file"] for o in lines] == [str(p) for p in paths]
    for prob, out in zip(probs, lines, strict=True):
        assert out["status"] == "optimal"
        assert out["value"] == pytest.approx(solve(prob).value, abs=1e-9)


def test_batched_npz_gives_one_line_per_problem(files, tmp_path, capsys):
    probs, _ = files
    path = tmp_path / "batch.npz"
    np.savez(path, domains=np.stack([p.P for p in probs]), experts=np.stack([p.E for p in probs]))
    assert main(["solve", str(path), "--json"]) == 0
    lines = _lines(capsys)
    assert [o["file"] for o in lines] == [f"{path}[{b}]" for b in range(3)]
    for prob, out in zip(probs, lines, strict=True):
        assert out["value"] == pytest.approx(solve(prob).value, abs=1e-9)


def test_batched_npz_names_the_bad_problem(files, tmp_path, capsys):
    probs, _ = files
    D = np.stack([p.P for p in probs])
    D[1, 0, 0] += 0.5
    path = tmp_path / "bad.npz"
    np.savez(path, domains=D, experts=np.stack([p.E for p in probs]))
    assert main(["solve", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modgen-bench: error:") and "bad.npz[1]" in err


def _cripple(monkeypatch):
    """Every path answers badly: water-filling returns its uniform starting mixture's model, the
    conic chain fails. Nothing certifies, and the answer must say so. (The registry of solver
    paths is replaced for the test: `exact.paths.PATHS`.)"""
    from modgen_bench.exact import conic, paths
    from modgen_bench.exact.waterfill import fixed_mixture

    def stuck(ctx):
        lam = np.full(ctx.problem.p, 1.0 / ctx.problem.p)
        res = fixed_mixture(ctx.inner, lam)
        return paths.PathResult(
            model=res.q, lam=lam, bound=res.bound, path="stuck", per_domain_kl=res.g
        )

    def fail(ctx):
        raise conic.ConicFailure("every conic solver failed (test)")

    monkeypatch.setattr(
        paths,
        "PATHS",
        {
            "stuck": paths.SolverPath("stuck", "waterfill", stuck),
            "cvxpy": paths.SolverPath("cvxpy", "cvxpy", fail, reference=True),
        },
    )


def test_uncertified_answer_is_inaccurate_with_a_true_interval_and_exit_3(
    files, monkeypatch, capsys
):
    probs, paths = files
    truth = [solve(p).value for p in probs]
    _cripple(monkeypatch)
    assert main(["solve", *map(str, paths), "--json"]) == 3
    for v, out in zip(truth, _lines(capsys), strict=True):
        assert out["status"] == "inaccurate"
        lo, hi = out["bound"]
        assert lo - 1e-9 <= v <= hi + 1e-9 and hi - lo == pytest.approx(out["duality_gap"])
        assert out["duality_gap"] > 1e-9
    assert main(["solve", str(paths[0])]) == 3
    assert "NOT CERTIFIED" in capsys.readouterr().out


def test_a_loose_tol_certifies_what_a_tight_one_does_not(files, monkeypatch, capsys):
    _, paths = files
    _cripple(monkeypatch)
    assert main(["solve", str(paths[0]), "--json"]) == 3
    gap = _lines(capsys)[0]["duality_gap"]
    assert main(["solve", str(paths[0]), "--json", "--tol", str(2 * gap)]) == 0
    assert _lines(capsys)[0]["status"] == "optimal"


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "x"])
def test_tol_must_be_a_finite_nonnegative_number(files, bad, capsys):
    _, paths = files
    with pytest.raises(SystemExit) as exc:
        main(["solve", str(paths[0]), "--tol", bad])
    assert exc.value.code == 2
